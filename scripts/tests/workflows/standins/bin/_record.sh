# Sourced by the stand-ins: `record WORDS...` appends one line to $STANDIN_LOG.
record() {
    printf '%s\n' "$*" >>"${STANDIN_LOG:?STANDIN_LOG must be set}"
}
