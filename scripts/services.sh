#!/usr/bin/env bash
# Makes sure the real services capisync's tests use are there and configured:
#   PostgreSQL on 127.0.0.1:5432 with wal_level=logical, max_replication_slots
#   and max_wal_senders >= 10, a role capisync (password capisync, may
#   replicate) and a database capisync_test;
#   MariaDB on 127.0.0.1:3306 with a user capisync (password capisync, may
#   read the binlog) and a database capisync_test, and its binlog on in the
#   form a binlog source reads (log_bin, binlog_format=ROW,
#   binlog_row_image=FULL, binlog_row_metadata=FULL, server_id set), TLS on
#   (a self-signed certificate) and a user capisync_tls (password capisync)
#   that may connect only over TLS;
#   promtool, systemd-analyze and chromium, which the tests of the deployment
#   files and of the status page use.
# Idempotent: installed but misconfigured -> configure and restart; absent and
# root on Debian -> apt-get install; otherwise fail saying what is missing.
# When all is already right it only checks (well under 5 s).
set -euo pipefail

PG_PORT=5432
MY_PORT=3306
MY_CNF=/etc/mysql/mariadb.conf.d/60-capisync-binlog.cnf # the binlog and TLS settings (ensure_binlog)
MY_SSL=/etc/mysql/capisync-ssl                           # the test server's self-signed certificate
OWN_MARK="created by capisync scripts/services.sh for its tests"
log() { echo "services: $*" >&2; }
die() { echo "services: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
	if is_root && command -v apt-get >/dev/null; then
		log "installing $*"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		apt-get install -y -qq "$@" >/dev/null
	else
		die "$* missing: install it (Debian: apt-get install $*) or run this script as root"
	fi
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "$what did not come up in time"
		sleep 0.2
	done
}

# ---------- PostgreSQL ----------
pg_psql() { # run psql as the postgres superuser over the local socket
	if is_root; then runuser -u postgres -- psql -X -q -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@"; else psql -X -q -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; fi
}

ensure_postgres() {
	command -v pg_lsclusters >/dev/null || apt_install postgresql
	local ver
	ver=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p {print $1; exit}')
	if [ -z "$ver" ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
		[ -n "$ver" ] || die "no PostgreSQL server version under /usr/lib/postgresql"
		is_root || die "no PostgreSQL cluster on port $PG_PORT; create one with pg_createcluster (needs root)"
		log "creating PostgreSQL $ver cluster main on port $PG_PORT"
		pg_createcluster -p "$PG_PORT" "$ver" main >/dev/null
	fi
	local cluster
	cluster=$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p {print $2; exit}')
	if ! pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p' | grep -q online; then
		log "starting PostgreSQL $ver/$cluster"
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" start
	fi
	wait_for 30 "PostgreSQL" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"

	local settings
	settings=$(pg_psql -Atc "select current_setting('wal_level'), current_setting('max_replication_slots'), current_setting('max_wal_senders')" -F ' ')
	read -r wal slots senders <<<"$settings"
	# Only settings that need a restart to change are checked, and the server
	# is restarted only when one of them is really too low: a server that is
	# already right is never restarted.
	if [ "$wal" != logical ] || [ "$slots" -lt 10 ] || [ "$senders" -lt 10 ]; then
		log "configuring PostgreSQL (wal_level=$wal, max_replication_slots=$slots, max_wal_senders=$senders) and restarting"
		pg_psql -c "ALTER SYSTEM SET wal_level = logical" \
			-c "ALTER SYSTEM SET max_replication_slots = $((slots < 10 ? 20 : slots))" \
			-c "ALTER SYSTEM SET max_wal_senders = $((senders < 10 ? 20 : senders))"
		pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" restart
		wait_for 30 "PostgreSQL after restart" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
		[ "$(pg_psql -Atc 'show wal_level')" = logical ] || die "PostgreSQL wal_level is still not logical after restart"
	fi

	pg_psql <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'capisync') THEN
    CREATE ROLE capisync LOGIN SUPERUSER REPLICATION PASSWORD 'capisync';
  END IF;
END $$;
SQL
	if [ -z "$(pg_psql -Atc "select 1 from pg_database where datname = 'capisync_test'")" ]; then
		pg_psql -c "CREATE DATABASE capisync_test OWNER capisync" -c "COMMENT ON DATABASE capisync_test IS '$OWN_MARK'"
	fi
	# A test run that was killed leaves its replication slot behind, and each
	# one holds one of max_replication_slots for good: a few of them and every
	# logical replication test fails to create its slot. Only in a database
	# this script created (its comment says so) are such slots dropped: the
	# script never drops what it did not create.
	if [ "$(pg_psql -Atc "select shobj_description(oid, 'pg_database') from pg_database where datname = 'capisync_test'")" = "$OWN_MARK" ]; then
		local stale
		stale=$(pg_psql -d capisync_test -Atc "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE database = 'capisync_test' AND NOT active")
		[ "$stale" = 0 ] || log "dropped $stale replication slot(s) left in capisync_test by earlier test runs"
	fi
	PGPASSWORD=capisync psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U capisync -d capisync_test -Atc 'select 1' >/dev/null ||
		die "cannot log in to PostgreSQL on 127.0.0.1:$PG_PORT as capisync; check pg_hba.conf allows md5/scram or trust for 127.0.0.1"
}

# ---------- MariaDB ----------
my_root() { mariadb --protocol=socket -uroot "$@"; }

ensure_mariadb() {
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
	if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" ping >/dev/null 2>&1 &&
		! mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
		is_root || die "MariaDB is not running and starting it needs root"
		log "starting MariaDB"
		install -d -o mysql -g mysql /run/mysqld
		if [ -f "$MY_CNF" ]; then
			start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --defaults-extra-file="$MY_CNF"
		else
			start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
		fi
		wait_for 60 "MariaDB" mariadb-admin --protocol=socket ping
	fi
	ensure_binlog
	my_root <<'SQL'
CREATE DATABASE IF NOT EXISTS capisync_test;
CREATE USER IF NOT EXISTS 'capisync'@'127.0.0.1' IDENTIFIED BY 'capisync';
CREATE USER IF NOT EXISTS 'capisync'@'localhost' IDENTIFIED BY 'capisync';
GRANT ALL ON capisync_test.* TO 'capisync'@'127.0.0.1';
GRANT ALL ON capisync_test.* TO 'capisync'@'localhost';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'capisync'@'127.0.0.1';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'capisync'@'localhost';
-- Tests write rows as sessions with their own binlog settings do
-- (binlog_row_image MINIMAL, binlog_format STATEMENT); a reader needs none.
GRANT BINLOG ADMIN ON *.* TO 'capisync'@'127.0.0.1';
GRANT BINLOG ADMIN ON *.* TO 'capisync'@'localhost';
-- A user whose every connection, the binlog reader's too, must be TLS.
CREATE USER IF NOT EXISTS 'capisync_tls'@'127.0.0.1' IDENTIFIED BY 'capisync';
ALTER USER 'capisync_tls'@'127.0.0.1' REQUIRE SSL;
GRANT ALL ON capisync_test.* TO 'capisync_tls'@'127.0.0.1';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'capisync_tls'@'127.0.0.1';
SQL
	mariadb --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -ucapisync -pcapisync capisync_test -e 'select 1' >/dev/null ||
		die "cannot reach MariaDB on 127.0.0.1:$MY_PORT as capisync (is it bound to 127.0.0.1 and skip-networking off?)"
}

# The binlog settings a mysql_binlog source needs, and TLS. log_bin and TLS
# take a restart; the others are set at once too (SET GLOBAL). All are
# written to a file the server reads at start (MY_CNF, given to mariadbd
# when this script starts it, and included by Debian's my.cnf). A server
# already right is never restarted.
binlog_settings() {
	my_root -N -e "select @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id" | tr '\t' ' '
}
ssl_on() { [ "$(my_root -N -e 'select @@have_ssl')" = YES ]; }
binlog_ready() { # the settings given are what a binlog source needs (any server_id but 0)
	local lb fmt img meta sid
	read -r lb fmt img meta sid <<<"$1"
	[ "$lb $fmt $img $meta" = "1 ROW FULL FULL" ] && [ "$sid" != 0 ]
}
ensure_binlog() {
	local have lb
	have=$(binlog_settings)
	binlog_ready "$have" && ssl_on && return
	is_root || die "MariaDB's binlog is not set up for a binlog source ($have; want log_bin=1 binlog_format=ROW binlog_row_image=FULL binlog_row_metadata=FULL server_id>0), or TLS is off, and changing it needs root"
	if [ ! -s "$MY_SSL/key.pem" ] || [ ! -s "$MY_SSL/cert.pem" ]; then
		command -v openssl >/dev/null || apt_install openssl
		log "making a self-signed certificate for MariaDB's TLS ($MY_SSL)"
		install -d -m 700 -o mysql -g mysql "$MY_SSL"
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=capisync-test" \
			-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$MY_SSL/key.pem" -out "$MY_SSL/cert.pem" 2>/dev/null
		chown mysql:mysql "$MY_SSL"/*.pem
		chmod 600 "$MY_SSL/key.pem"
	fi
	install -d "$(dirname "$MY_CNF")"
	cat >"$MY_CNF" <<CNF
# Written by capisync scripts/services.sh: the binlog a mysql_binlog source
# reads, and TLS for the tests of sources whose DSN asks for it.
[mariadbd]
ssl_cert = $MY_SSL/cert.pem
ssl_key = $MY_SSL/key.pem
log_bin = capisync-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
server_id = 1
binlog_expire_logs_seconds = 172800
CNF
	read -r lb _ <<<"$have"
	if [ "$lb" = 1 ] && ssl_on; then
		log "setting MariaDB's binlog format ($have)"
		my_root -e "SET GLOBAL binlog_format = ROW; SET GLOBAL binlog_row_image = FULL; SET GLOBAL binlog_row_metadata = FULL; SET GLOBAL server_id = IF(@@server_id = 0, 1, @@server_id)"
		return
	fi
	log "turning MariaDB's binlog ($have) and TLS on and restarting it"
	mariadb-admin --protocol=socket -uroot shutdown
	wait_for 60 "MariaDB to stop" sh -c '! mariadb-admin --protocol=socket ping'
	install -d -o mysql -g mysql /run/mysqld
	# The file is named on the command line too: a my.cnf that includes no
	# directory still gets it.
	start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --defaults-extra-file="$MY_CNF"
	wait_for 60 "MariaDB after restart" mariadb-admin --protocol=socket ping
	have=$(binlog_settings)
	binlog_ready "$have" || die "MariaDB's binlog is still not right after restart: $have"
	ssl_on || die "MariaDB's TLS is still off after restart (ssl_cert $MY_SSL/cert.pem)"
}

# ---------- tools the tests use ----------
# promtool checks the Prometheus alerting rules; systemd-analyze the unit;
# headless Chromium renders the status page as a person sees it.
ensure_tools() {
	command -v promtool >/dev/null || apt_install prometheus
	command -v systemd-analyze >/dev/null || apt_install systemd
	command -v chromium >/dev/null || apt_install chromium
}

ensure_postgres
ensure_mariadb
ensure_tools
