"""One module per DVC stage: a pure function doing the work and a thin ``main()`` reading params.yaml."""
