#!/bin/sh
# As the official redis image's entrypoint: options or a *.conf file as the first argument run
# redis-server with them; started as root, redis-server takes over /data and drops to the redis user.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
# The official entrypoint's default for files redis writes (AOF, RDB): private to the user.
if [ "$(umask)" = 0022 ]; then umask 0077; fi
exec "$@"
