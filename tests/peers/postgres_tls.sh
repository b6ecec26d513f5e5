#!/usr/bin/env bash
# Turns TLS on in the machine's PostgreSQL server for the TLS tests
# (tests/relance/postgres_tls.rs), as a managed PostgreSQL has it:
#
#   postgres_tls.sh DIR [ADMIN_URL]
#
# - a certificate authority made here (DIR/ca.crt), a server certificate it signs for
#   localhost and 127.0.0.1, a client certificate for the role relance_cert, and a
#   second authority the server does not use (DIR/other-ca.crt);
# - ssl = on with that certificate (ALTER SYSTEM, then a reload: no restart);
# - the role relance_tls may only connect over TLS, the role relance_cert only over TLS
#   with a client certificate signed by the authority (pg_hba.conf lines put first).
#
# Other roles keep connecting as before (with or without TLS). Running it again makes
# new certificates and changes nothing else. Needs root (it writes the server's files).
set -euo pipefail

DIR=${1:?usage: postgres_tls.sh DIR [ADMIN_URL]}
ADMIN=${2:-postgres://postgres@127.0.0.1:5432/postgres}
mkdir -p "$DIR"
cd "$DIR"

psql_admin() { psql "$ADMIN" -v ON_ERROR_STOP=1 -qAt "$@"; }

openssl_quiet() { openssl "$@" >/dev/null 2>&1; }

# The authority, the server's certificate (names checked by sslmode=verify-full), the
# client's (its common name is the role it signs in as), another authority.
openssl_quiet req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
  -subj "/CN=relance test CA"
openssl_quiet req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
openssl_quiet x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
  -days 3650 -extfile server.ext
openssl_quiet req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=relance_cert"
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
openssl_quiet x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
  -days 3650 -extfile client.ext
openssl_quiet req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 3650 \
  -subj "/CN=another CA"
chmod 0644 ./*.crt
chmod 0600 ./*.key

# The server's files, owned by the server's user, next to its data.
DATA=$(psql_admin -c "SHOW data_directory")
OWNER=$(stat -c %U "$DATA")
install -o "$OWNER" -g "$(stat -c %G "$DATA")" -m 0600 server.key "$DATA/relance-test-server.key"
install -o "$OWNER" -g "$(stat -c %G "$DATA")" -m 0644 server.crt "$DATA/relance-test-server.crt"
install -o "$OWNER" -g "$(stat -c %G "$DATA")" -m 0644 ca.crt "$DATA/relance-test-ca.crt"

# Who must use TLS: lines before every other line of pg_hba.conf, written once.
HBA=$(psql_admin -c "SHOW hba_file")
if ! grep -q "relance TLS tests" "$HBA"; then
  {
    echo "# relance TLS tests: these roles connect over TLS only"
    echo "hostnossl all relance_tls all reject"
    echo "hostssl   all relance_tls all trust"
    echo "hostnossl all relance_cert all reject"
    echo "hostssl   all relance_cert all cert"
    cat "$HBA"
  } >"$HBA.relance" && cat "$HBA.relance" >"$HBA" && rm -f "$HBA.relance"
fi

psql_admin <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'relance_tls') THEN CREATE ROLE relance_tls LOGIN CREATEDB; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'relance_cert') THEN CREATE ROLE relance_cert LOGIN CREATEDB; END IF;
END \$\$;
ALTER SYSTEM SET ssl_cert_file = '$DATA/relance-test-server.crt';
ALTER SYSTEM SET ssl_key_file = '$DATA/relance-test-server.key';
ALTER SYSTEM SET ssl_ca_file = '$DATA/relance-test-ca.crt';
ALTER SYSTEM SET ssl = on;
SELECT pg_reload_conf();
SQL

# The reload is asynchronous: wait until a TLS connection as relance_tls goes through.
for _ in $(seq 1 30); do
  if psql "postgres://relance_tls@localhost:5432/postgres?sslmode=verify-full&sslrootcert=$DIR/ca.crt" \
    -qAt -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>/dev/null | grep -q '^t$'; then
    echo "PostgreSQL requires TLS for relance_tls and relance_cert (authority: $DIR/ca.crt)"
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL did not accept a TLS connection after turning TLS on" >&2
exit 1
