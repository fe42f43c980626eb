#!/usr/bin/env bash
# Install and start what the tests talk to: DCMTK, dicom3tools, Orthanc, Redis, PostgreSQL, Prometheus,
# chromium.
# Idempotent: installs only what is missing, starts only what is not answering.
set -euo pipefail

need=()
[ -x /usr/bin/storescu ] || need+=(dcmtk)
[ -x /usr/bin/dciodvfy ] || need+=(dicom3tools)
[ -x /usr/sbin/Orthanc ] || need+=(orthanc)
command -v redis-server >/dev/null || need+=(redis-server)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
[ -x /usr/bin/promtool ] || need+=(prometheus)
# The Helm chart's templates are rendered by tests/helm_render (Go text/template + sprig, GOPATH mode).
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/Masterminds/sprig ] || need+=(golang-github-masterminds-sprig-dev)
[ -d /usr/share/gocode/src/gopkg.in/yaml.v2 ] || need+=(golang-gopkg-yaml.v2-dev)
[ -d /usr/share/gocode/src/gopkg.in/yaml.v3 ] || need+=(golang-gopkg-yaml.v3-dev)
# The QC page is tested in a real browser (tests/test_page_browser.py): Debian's chromium and its driver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  echo "peers: installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus starts a system server on :9090 where services may start; the tests run their
  # own on free ports with their own config and data dir, so stop and disable the one just installed.
  if [[ " ${need[*]} " == *" prometheus "* ]]; then
    if [ -d /run/systemd/system ]; then $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
    else $sudo invoke-rc.d prometheus stop >/dev/null 2>&1 || true; fi
  fi
fi

# Debian's orthanc package may start a system instance on 4242/8042; tests start their own.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "peers: starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/qcgate-test.log
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "peers: starting postgresql"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
# A fresh Debian cluster asks for passwords on TCP; the tests expect local trust and database `test`.
if pg_isready -q -h 127.0.0.1 -p 5432 && ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  echo "peers: allowing trust auth for postgres on loopback"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "peers: redis or postgresql did not come up" >&2
exit 1
