#!/bin/sh
# As the official node image's entrypoint: run the command as given, unless the first argument is
# an option (`-e ...`, `--version`), not a command on PATH, or a file that is not executable (a
# script such as `operator/main.ts`); then run it with node.
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
