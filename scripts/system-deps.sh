#!/usr/bin/env bash
# Debian packages the demo and the test suite use. Installs what is missing (needs root);
# otherwise prints the apt-get command to run.
set -euo pipefail
PACKAGES=(
  dataset-fashion-mnist      # real labelled images for the fine-tuning demo and tests
  postgresql                 # shared Hive metastore; tests start a throwaway server (tests/pg.py)
  libpostgresql-jdbc-java    # JDBC driver for it: /usr/share/java/postgresql.jar
  slapd                      # OpenLDAP server: tests start a throwaway one (tests/ldap_server.py)
  ldap-utils                 # ldapwhoami/ldapadd, to check that test server
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  # slapd: no default database and no prompt; tests run their own slapd, the system one stays unused
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
