#!/bin/sh
# Init container of every dmp pod (README-ops.md, "Recovery and snapshots").
#
# 1. Writes the Bytewax hostfile: one host:port line per process, in process
#    order, from the StatefulSet's pod names and its headless Service. Every
#    process gets the same file, so every process knows every address.
# 2. Creates the recovery store if it is absent. The whole store (all
#    RECOVERY_PARTITIONS partitions) lives on pod 0's volume: Bytewax needs
#    every partition on some process, and pod 0 exists at every scale, so the
#    process count can change without moving files. Other pods run with an
#    empty recovery directory, which Bytewax allows.
#
# In: BYTEWAX_POD_NAME, BYTEWAX_STATEFULSET_NAME, POD_NAMESPACE,
# BYTEWAX_HOSTFILE_PATH, BYTEWAX_RECOVERY_DIRECTORY, PROCESSES (the
# StatefulSet's replicas), RECOVERY_PARTITIONS, PEER_SERVICE, PEER_PORT;
# PYTHON (default python). Safe to run again: an existing store is kept.
set -eu

fail() {
    echo "init-cluster: $*" >&2
    exit 1
}

positive() {
    case $2 in
    '' | *[!0-9]* | 0) fail "$1='$2': expected a positive integer" ;;
    esac
}

: "${BYTEWAX_POD_NAME:?}" "${BYTEWAX_STATEFULSET_NAME:?}" "${POD_NAMESPACE:?}" "${BYTEWAX_HOSTFILE_PATH:?}"
: "${BYTEWAX_RECOVERY_DIRECTORY:?}" "${PROCESSES:?}" "${RECOVERY_PARTITIONS:?}" "${PEER_SERVICE:?}" "${PEER_PORT:?}"
positive PROCESSES "$PROCESSES"
positive RECOVERY_PARTITIONS "$RECOVERY_PARTITIONS"

# Bytewax reads the process id the same way: the pod name minus "<statefulset>-".
ordinal=${BYTEWAX_POD_NAME##*-}
[ "${BYTEWAX_POD_NAME%-*}" = "$BYTEWAX_STATEFULSET_NAME" ] ||
    fail "pod $BYTEWAX_POD_NAME is not a pod of BYTEWAX_STATEFULSET_NAME=$BYTEWAX_STATEFULSET_NAME (it must be the StatefulSet's name)"
case $ordinal in
'' | *[!0-9]*) fail "no ordinal at the end of BYTEWAX_POD_NAME=$BYTEWAX_POD_NAME" ;;
esac
[ "$ordinal" -lt "$PROCESSES" ] ||
    fail "pod $BYTEWAX_POD_NAME but PROCESSES=$PROCESSES: PROCESSES must equal the StatefulSet's replicas"

hostfile=$BYTEWAX_HOSTFILE_PATH
mkdir -p "$(dirname "$hostfile")"
: >"$hostfile.new"
i=0
while [ "$i" -lt "$PROCESSES" ]; do
    echo "$BYTEWAX_STATEFULSET_NAME-$i.$PEER_SERVICE.$POD_NAMESPACE.svc:$PEER_PORT" >>"$hostfile.new"
    i=$((i + 1))
done
mv "$hostfile.new" "$hostfile"
echo "init-cluster: process $ordinal of $PROCESSES; hostfile $hostfile:"
cat "$hostfile"

store=$BYTEWAX_RECOVERY_DIRECTORY
partitions() {
    set -- "$store"/part-*.sqlite3
    if [ -e "$1" ]; then echo $#; else echo 0; fi
}

if [ "$ordinal" -ne 0 ]; then
    mkdir -p "$store"
    found=$(partitions)
    [ "$found" -eq 0 ] ||
        fail "$store holds $found recovery partitions, but the store lives on pod 0 only; move them to pod 0's volume or delete them"
    echo "init-cluster: the recovery store lives on pod 0; $store stays empty here"
    exit 0
fi

found=0
if [ -d "$store" ]; then
    found=$(partitions)
fi
if [ "$found" -eq "$RECOVERY_PARTITIONS" ]; then
    echo "init-cluster: keeping the recovery store in $store ($found partitions)"
    exit 0
fi
[ "$found" -eq 0 ] ||
    fail "$store holds $found recovery partitions, not RECOVERY_PARTITIONS=$RECOVERY_PARTITIONS: the count is fixed for the life of a store"

# Build the store beside its final place and rename it in one step, so a crash
# never leaves a partial store that looks complete.
rm -rf "$store.new"
mkdir -p "$store.new"
"${PYTHON:-python}" -m bytewax.recovery "$store.new" "$RECOVERY_PARTITIONS"
if [ -d "$store" ]; then
    rmdir "$store" 2>/dev/null || fail "$store holds files but no recovery partitions; empty it or delete it"
fi
mv "$store.new" "$store"
echo "init-cluster: created a recovery store of $RECOVERY_PARTITIONS partitions in $store"
