#!/usr/bin/env bash
# make-captures.sh remakes the lo-* captures of this directory: real
# OpenSSL, curl, nghttpd, nghttpx and Python servers and clients talking on loopback
# (127.0.0.1 and ::1 only; every name is world.lab.test, given to the
# clients with -servername or --resolve, never looked up), recorded with
# tcpdump. Needs root (tcpdump, ports 25, 80, 143, 443), openssl, curl,
# nghttp, nghttpd and nghttpx (Debian packages nghttp2-client, nghttp2-server and
# nghttp2-proxy), python3, tcpdump and ss.
#
#   sudo capture/testdata/world/make-captures.sh            # every capture
#   sudo capture/testdata/world/make-captures.sh lo-tls13-   # those whose name starts so
#
# Each capture is written as NAME.pcap with, when it has them, NAME.keylog
# (the client's NSS key log) and NAME.key (the server's RSA key, for
# captures that decrypt with it). The PKI is made afresh on every run, so a
# capture remade has new keys and certificates; TestInteropWorld reads the
# committed files and never runs this script. The keys protect nothing.
#
# Every step is bounded (timeout), every server is stopped on exit, and the
# work directory is removed.

set -euo pipefail
export LC_ALL=C

OUT=$(cd "$(dirname "$0")" && pwd)
ONLY=${1:-}
WORK=$(mktemp -d /tmp/world-captures.XXXXXX)
PIDS=()
NAME=world.lab.test

cleanup() {
	stop_bg
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { printf '== %s\n' "$*" >&2; }

for tool in openssl curl nghttp nghttpd nghttpx python3 tcpdump ss timeout; do
	command -v "$tool" >/dev/null || { echo "make-captures.sh: $tool is not installed" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "make-captures.sh: run as root (tcpdump, low ports)" >&2; exit 1; }

# --- PKI: a throwaway CA, a server leaf and a client leaf (RSA 2048) --------
pki() {
	cd "$WORK"
	cat >ext.cnf <<-'EOF'
		[ca]
		basicConstraints = critical, CA:TRUE, pathlen:0
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
		[server]
		basicConstraints = CA:FALSE
		keyUsage = critical, digitalSignature, keyEncipherment
		extendedKeyUsage = serverAuth
		subjectAltName = DNS:world.lab.test, IP:127.0.0.1, IP:::1
		[client]
		basicConstraints = CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = clientAuth
	EOF
	openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -sha256 -days 30 \
		-subj "/O=mitmlab/CN=mitmlab world captures CA (published key)" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out ca.pem 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -keyout server.key -subj "/O=mitmlab/CN=world.lab.test" -out server.csr 2>/dev/null
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 \
		-extfile ext.cnf -extensions server -out server.pem 2>/dev/null
	openssl req -new -newkey rsa:2048 -nodes -keyout client.key -subj "/O=mitmlab/CN=alice (client certificate)" -out client.csr 2>/dev/null
	openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 \
		-extfile ext.cnf -extensions client -out client.pem 2>/dev/null
	cat server.pem ca.pem >chain.pem
	cd - >/dev/null
}

# --- helpers ----------------------------------------------------------------

want() { [ -z "$ONLY" ] || [[ $1 == "$ONLY"* ]]; }

# wait_port PROTO PORT: until something listens there (at most 10 s).
wait_port() {
	local flag=-ltn i
	[ "$1" = udp ] && flag=-lun
	for i in $(seq 100); do
		ss -H $flag "sport = :$2" | grep -q . && return 0
		sleep 0.1
	done
	echo "make-captures.sh: nothing listens on $1 port $2" >&2
	cat "$WORK/servers.log" >&2
	exit 1
}

# bg CMD...: start a server in the background, in a process group of its
# own (nghttpx forks workers), stopped at exit or by stop_bg.
bg() {
	setsid "$@" </dev/null >>"$WORK/servers.log" 2>&1 &
	PIDS+=("$!")
}

stop_bg() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	sleep 0.2
	for p in "${PIDS[@]}"; do
		kill -KILL -- "-$p" 2>/dev/null || true
	done
	PIDS=()
}

# record NAME IFACE FILTER CMD...: tcpdump records IFACE while CMD runs;
# extra tcpdump options come from TCPDUMP_OPTS.
record() {
	local name=$1 iface=$2 filter=$3 i
	shift 3
	local file="$OUT/$name.pcap" err="$WORK/$name.tcpdump"
	: >"$err"
	rm -f "$file" "$OUT/$name.keylog" "$OUT/$name.key"
	# -B: in immediate mode each ring slot holds a whole snaplen (256 KiB);
	# with the default 2 MiB buffer, a burst of a dozen packets is dropped.
	# shellcheck disable=SC2086
	timeout 60 tcpdump -Z root -i "$iface" ${TCPDUMP_OPTS:-} -U --immediate-mode -s 0 -B 65536 -w "$file" "$filter" 2>"$err" &
	local tpid=$!
	for i in $(seq 100); do
		grep -q "listening on" "$err" && break
		sleep 0.1
	done
	grep -q "listening on" "$err" || { cat "$err" >&2; kill "$tpid"; return 1; }
	local rc=0
	"$@" || rc=$?
	sleep 0.3 # the last packets
	kill -INT "$tpid" 2>/dev/null || true
	wait "$tpid" 2>/dev/null || true
	stop_bg
	# A handshake refused before any secret leaves a key log of only its comment.
	grep -qv "^#" "$OUT/$name.keylog" 2>/dev/null || rm -f "$OUT/$name.keylog"
	[ "$rc" = 0 ] || { echo "make-captures.sh: $name: the exchange failed ($rc)" >&2; return 1; }
	log "$name: $(tcpdump -r "$file" 2>/dev/null | wc -l) packets; tcpdump: $(grep -h "dropped by kernel" "$err")"
}

# s_server_www PORT ARGS...: an OpenSSL server answering GET with its status page.
s_server_www() {
	local port=$1
	shift
	bg timeout 30 openssl s_server -accept "127.0.0.1:$port" -cert "$WORK/server.pem" -key "$WORK/server.key" \
		-CAfile "$WORK/ca.pem" -www -naccept 1 "$@"
	wait_port tcp "$port"
}

# get NAME ARGS...: s_client sends one HTTP/1.0 request to 127.0.0.1:443 and
# reads the answer, its key log in NAME.keylog.
get() {
	local name=$1
	shift
	printf 'GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n' "$name" "$NAME" |
		timeout 20 openssl s_client -connect 127.0.0.1:443 -servername "$NAME" -CAfile "$WORK/ca.pem" \
			-keylogfile "$OUT/$name.keylog" -ign_eof "$@" >"$WORK/$name.out" 2>&1
	grep -q "HTTP/1.0 200 ok" "$WORK/$name.out" || { cat "$WORK/$name.out" >&2; return 1; }
}

# tls NAME SERVER-ARGS -- CLIENT-ARGS: one s_server -www, one s_client GET.
tls() {
	local name=$1
	shift
	local sargs=() cargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		sargs+=("$1")
		shift
	done
	shift
	cargs=("$@")
	want "$name" || return 0
	record "$name" lo "tcp port 443" tls_exchange "$name" "${sargs[@]}" -- "${cargs[@]}"
}

tls_exchange() {
	local name=$1
	shift
	local sargs=()
	while [ "$1" != -- ]; do
		sargs+=("$1")
		shift
	done
	shift
	s_server_www 443 "${sargs[@]}"
	get "$name" "$@"
}

pki

# --- TLS 1.0 to 1.3, one cipher suite each ----------------------------------
# CBC suites: OpenSSL negotiates encrypt_then_mac (RFC 7366) by default; the
# -mte captures turn it off with -no_etm, leaving MAC-then-encrypt.
legacy=(-cipher 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0')
tls lo-tls10-ecdhe-rsa-aes128-sha-etm -tls1 "${legacy[@]}" -- -tls1 "${legacy[@]}"
tls lo-tls10-ecdhe-rsa-aes128-sha-mte -tls1 "${legacy[@]}" -- -tls1 "${legacy[@]}" -no_etm
tls lo-tls11-rsa-aes256-sha-mte -tls1_1 -cipher 'AES256-SHA:@SECLEVEL=0' -- -tls1_1 -cipher 'AES256-SHA:@SECLEVEL=0' -no_etm
[ ! -f "$OUT/lo-tls11-rsa-aes256-sha-mte.pcap" ] || cp "$WORK/server.key" "$OUT/lo-tls11-rsa-aes256-sha-mte.key"
tls lo-tls12-ecdhe-rsa-aes128-sha256-etm -tls1_2 -cipher ECDHE-RSA-AES128-SHA256 -- -tls1_2 -cipher ECDHE-RSA-AES128-SHA256
tls lo-tls12-ecdhe-rsa-aes128-sha256-mte -tls1_2 -cipher ECDHE-RSA-AES128-SHA256 -- -tls1_2 -cipher ECDHE-RSA-AES128-SHA256 -no_etm
tls lo-tls12-ecdhe-rsa-aes128-gcm -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -- -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
tls lo-tls12-dhe-rsa-aes256-gcm -tls1_2 -cipher DHE-RSA-AES256-GCM-SHA384 -- -tls1_2 -cipher DHE-RSA-AES256-GCM-SHA384
tls lo-tls12-ecdhe-rsa-chacha20 -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305 -- -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305
tls lo-tls12-rsa-aes128-ccm -tls1_2 -cipher AES128-CCM -- -tls1_2 -cipher AES128-CCM
tls lo-tls12-rsa-aes128-ccm8 -tls1_2 -cipher 'AES128-CCM8:@SECLEVEL=0' -- -tls1_2 -cipher 'AES128-CCM8:@SECLEVEL=0'
# RSA key transport decrypted with the server's key alone: no key log kept.
if want lo-tls12-rsa-aes256-gcm-serverkey; then
	tls lo-tls12-rsa-aes256-gcm-serverkey -tls1_2 -cipher AES256-GCM-SHA384 -- -tls1_2 -cipher AES256-GCM-SHA384
	rm -f "$OUT/lo-tls12-rsa-aes256-gcm-serverkey.keylog"
	cp "$WORK/server.key" "$OUT/lo-tls12-rsa-aes256-gcm-serverkey.key"
fi
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256 TLS_AES_128_CCM_SHA256 TLS_AES_128_CCM_8_SHA256; do
	n=$(echo "$suite" | tr 'A-Z_' 'a-z-' | sed 's/^tls-//; s/-sha256$//; s/-sha384$//; s/aes-/aes/; s/ccm-8/ccm8/; s/chacha20-poly1305/chacha20/')
	tls "lo-tls13-$n" -tls1_3 -ciphersuites "$suite" -- -tls1_3 -ciphersuites "$suite"
done

# --- PSK ---------------------------------------------------------------------
PSK=6d69746d6c61622d776f726c642d70736b
tls lo-tls12-psk-aes128-gcm -tls1_2 -nocert -psk "$PSK" -psk_hint world -cipher PSK-AES128-GCM-SHA256 -- \
	-tls1_2 -psk "$PSK" -psk_identity alice -cipher PSK-AES128-GCM-SHA256
# The same capture with only the PSK: the analyzer and tshark derive the
# keys from it (--psk, tls.psk), without a key log line.
cp "$OUT/lo-tls12-psk-aes128-gcm.pcap" "$OUT/lo-tls12-psk-aes128-gcm-psk-only.pcap"
echo "$PSK" > "$OUT/lo-tls12-psk-aes128-gcm-psk-only.psk"
# TLS 1.3 with an external PSK: OpenSSL's server picks psk_dhe_ke (a key share
# besides the PSK) from the modes the client offers.
tls lo-tls13-psk-external -tls1_3 -psk "$PSK" -psk_identity alice -ciphersuites TLS_AES_128_GCM_SHA256 -- \
	-tls1_3 -psk "$PSK" -psk_identity alice -ciphersuites TLS_AES_128_GCM_SHA256

# --- client certificates ------------------------------------------------------
tls lo-tls12-client-cert -tls1_2 -Verify 1 -cipher ECDHE-RSA-AES128-GCM-SHA256 -- \
	-tls1_2 -cert "$WORK/client.pem" -key "$WORK/client.key" -cipher ECDHE-RSA-AES128-GCM-SHA256
tls lo-tls13-client-cert -tls1_3 -Verify 1 -- -tls1_3 -cert "$WORK/client.pem" -key "$WORK/client.key"

# --- HelloRetryRequest: the client's key share is for a group the server refuses
tls lo-tls13-hrr -tls1_3 -groups X25519 -- -tls1_3 -groups P-256:X25519

# --- alerts -------------------------------------------------------------------
# The client does not know the CA (-verify_return_error without -CAfile): it
# refuses the server's certificate with an alert, in the clear in TLS 1.2.
alert() {
	local name=$1
	shift
	s_server_www 443 "$@"
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect 127.0.0.1:443 -servername "$NAME" \
		-verify_return_error -keylogfile "$OUT/$name.keylog" "$@" >"$WORK/$name.out" 2>&1 || true
	grep -q "certificate verify failed" "$WORK/$name.out" || { cat "$WORK/$name.out" >&2; return 1; }
}
want lo-tls12-alert-unknown-ca && record lo-tls12-alert-unknown-ca lo "tcp port 443" alert lo-tls12-alert-unknown-ca -tls1_2
want lo-tls13-alert-unknown-ca && record lo-tls13-alert-unknown-ca lo "tcp port 443" alert lo-tls13-alert-unknown-ca -tls1_3

# --- resumption: two connections, the second resumes the first -------------
resume() {
	local name=$1
	shift
	bg timeout 30 openssl s_server -accept 127.0.0.1:443 -cert "$WORK/server.pem" -key "$WORK/server.key" -www -naccept 2 "$@"
	wait_port tcp 443
	printf 'GET /first HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect 127.0.0.1:443 -servername "$NAME" \
		-CAfile "$WORK/ca.pem" -keylogfile "$OUT/$name.keylog" -sess_out "$WORK/$name.sess" -ign_eof "$@" >"$WORK/$name.1" 2>&1
	printf 'GET /second HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect 127.0.0.1:443 -servername "$NAME" \
		-CAfile "$WORK/ca.pem" -keylogfile "$OUT/$name.keylog" -sess_in "$WORK/$name.sess" -ign_eof "$@" >"$WORK/$name.2" 2>&1
	grep -q "^Reused" "$WORK/$name.2" || { cat "$WORK/$name.2" >&2; return 1; }
}
want lo-tls12-resume && record lo-tls12-resume lo "tcp port 443" resume lo-tls12-resume -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
want lo-tls13-resume && record lo-tls13-resume lo "tcp port 443" resume lo-tls13-resume -tls1_3

# --- renegotiation: a request, s_client's R command, a second request --------
# s_server -rev answers each line reversed; OpenSSL 3 refuses a renegotiation
# the client asks for unless -client_renegotiation.
reneg() {
	local name=$1
	bg timeout 30 openssl s_server -accept 127.0.0.1:443 -cert "$WORK/server.pem" -key "$WORK/server.key" -naccept 1 -tls1_2 \
		-cipher ECDHE-RSA-AES128-GCM-SHA256 -rev -client_renegotiation
	wait_port tcp 443
	{
		printf 'GET /before-renegotiation HTTP/1.1\r\nHost: %s\r\n\r\n' "$NAME"
		sleep 0.5
		echo R
		sleep 0.5
		printf 'GET /after-renegotiation HTTP/1.1\r\nHost: %s\r\n\r\n' "$NAME"
		sleep 0.5
		echo Q
	} | timeout 20 openssl s_client -connect 127.0.0.1:443 -servername "$NAME" -CAfile "$WORK/ca.pem" -tls1_2 \
		-keylogfile "$OUT/$name.keylog" >"$WORK/$name.out" 2>&1 || true
	grep -q "RENEGOTIATING" "$WORK/$name.out" || { cat "$WORK/$name.out" >&2; return 1; }
}
want lo-tls12-renegotiation && record lo-tls12-renegotiation lo "tcp port 443" reneg lo-tls12-renegotiation

# --- STARTTLS: a scripted Python server, openssl s_client -starttls ----------
cat >"$WORK/starttls.py" <<'EOF'
# A one-connection SMTP or IMAP server that upgrades to TLS on STARTTLS.
import socket, ssl, sys
proto, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.create_server(("127.0.0.1", port))
ls.settimeout(20)
c, _ = ls.accept()
c.settimeout(10)
f = c.makefile("rwb", buffering=0)
def say(s):
    f.write(s.encode() + b"\r\n")
def lines(f):
    while True:
        l = f.readline()
        if not l:
            return
        yield l.decode().rstrip("\r\n")
if proto == "smtp":
    say("220 world.lab.test ESMTP mitmlab")
    for l in lines(f):
        if l.upper().startswith("EHLO"):
            say("250-world.lab.test"); say("250 STARTTLS")
        elif l.upper() == "STARTTLS":
            say("220 go ahead"); break
    t = ctx.wrap_socket(c, server_side=True)
    g = t.makefile("rwb", buffering=0)
    f = g
    for l in lines(g):
        u = l.upper()
        if u.startswith("EHLO"):
            say("250-world.lab.test"); say("250 AUTH PLAIN")
        elif u.startswith("AUTH"):
            say("235 2.7.0 Authentication successful")
        elif u == "QUIT":
            say("221 bye"); break
        else:
            say("250 ok")
else:  # imap
    say("* OK [CAPABILITY IMAP4rev1 STARTTLS] world.lab.test ready")
    for l in lines(f):
        tag, _, cmd = l.partition(" ")
        if cmd.upper() == "CAPABILITY":
            say("* CAPABILITY IMAP4rev1 STARTTLS"); say(tag + " OK done")
        elif cmd.upper() == "STARTTLS":
            say(tag + " OK begin TLS"); break
    t = ctx.wrap_socket(c, server_side=True)
    f = t.makefile("rwb", buffering=0)
    for l in lines(f):
        tag, _, cmd = l.partition(" ")
        say(tag + " OK " + cmd.split(" ")[0].lower() + " done")
        if cmd.upper() == "LOGOUT":
            break
EOF
starttls() {
	local name=$1 proto=$2 port=$3 input=$4
	bg timeout 30 python3 "$WORK/starttls.py" "$proto" "$port" "$WORK/chain.pem" "$WORK/server.key"
	wait_port tcp "$port"
	{
		sleep 0.5
		printf '%b' "$input"
		sleep 0.5
	} | timeout 20 openssl s_client -connect "127.0.0.1:$port" -starttls "$proto" -servername "$NAME" -CAfile "$WORK/ca.pem" \
		-keylogfile "$OUT/$name.keylog" -crlf -ign_eof >"$WORK/$name.out" 2>&1
	grep -q "Verify return code: 0" "$WORK/$name.out" || { cat "$WORK/$name.out" >&2; return 1; }
}
want lo-starttls-smtp && record lo-starttls-smtp lo "tcp port 25" starttls lo-starttls-smtp smtp 25 \
	'EHLO client.lab.test\nAUTH PLAIN AGFsaWNlAGh1bnRlcjI=\nQUIT\n'
want lo-starttls-imap && record lo-starttls-imap lo "tcp port 143" starttls lo-starttls-imap imap 143 \
	'a1 LOGIN alice hunter2\na2 LOGOUT\n'

# --- curl: HTTP/2 over TLS, h2c (Upgrade and prior knowledge), HTTP/1.1 ------
mkdir -p "$WORK/htdocs"
echo "hello from world.lab.test" >"$WORK/htdocs/a"
echo "second file" >"$WORK/htdocs/b"
curl_() { timeout 20 curl -sS --resolve "$NAME:443:127.0.0.1" --resolve "$NAME:80:127.0.0.1" --cacert "$WORK/ca.pem" "$@" >/dev/null; }

h2tls() {
	bg timeout 30 nghttpd -d "$WORK/htdocs" 443 "$WORK/server.key" "$WORK/chain.pem"
	wait_port tcp 443
	SSLKEYLOGFILE="$OUT/lo-curl-h2-tls13.keylog" curl_ --http2 "https://$NAME/a" "https://$NAME/b?x=1"
}
want lo-curl-h2-tls13 && record lo-curl-h2-tls13 lo "tcp port 443" h2tls

cat >"$WORK/webserver.py" <<'EOF'
# An HTTP/1.x file server on 127.0.0.1 or ::1; HTTP/1.1 keep-alive with "1.1".
import http.server, socket, sys
host, port, version, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/" + version
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
    def do_GET(self):
        if version != "1.0":
            return super().do_GET()
        # HTTP/1.0 without Content-Length: the body ends when the server
        # closes, so the server closes first and holds TIME_WAIT.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello from world.lab.test\n")
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
S((host, port), H).serve_forever()
EOF
http_srv() {
	bg timeout 30 python3 "$WORK/webserver.py" "$1" "$2" "$3" "$WORK/htdocs"
	wait_port tcp "$2"
}

# nghttpd speaks HTTP/2 from the first byte only (prior knowledge); the
# Upgrade from HTTP/1.1 goes to nghttpx, which proxies to the Python server
# on 127.0.0.1:8081 (not recorded).
h2c_prior() {
	bg timeout 30 nghttpd -d "$WORK/htdocs" --no-tls 80
	wait_port tcp 80
	# curl 7.88 fails its second request on a prior-knowledge h2c
	# connection ("Error in the HTTP2 framing layer"): nghttp sends both.
	timeout 20 nghttp -n "http://127.0.0.1/a" "http://127.0.0.1/b"
}
h2c_upgrade() {
	http_srv 127.0.0.1 8081 1.1
	: >"$WORK/nghttpx.conf"
	bg timeout 30 nghttpx --conf="$WORK/nghttpx.conf" --frontend='127.0.0.1,80;no-tls' --backend='127.0.0.1,8081' --workers=1 \
		--no-ocsp --accesslog-file=/dev/null --errorlog-file="$WORK/nghttpx.log"
	wait_port tcp 80
	curl_ --http2 "http://$NAME/a" "http://$NAME/b"
}

want lo-curl-h2c-upgrade && record lo-curl-h2c-upgrade lo "tcp port 80" h2c_upgrade
want lo-curl-h2c-prior-knowledge && record lo-curl-h2c-prior-knowledge lo "tcp port 80" h2c_prior
keepalive() {
	http_srv 127.0.0.1 80 1.1
	curl_ --http1.1 "http://$NAME/a" "http://$NAME/b" "http://$NAME/missing"
}
want lo-curl-h1-keepalive && record lo-curl-h1-keepalive lo "tcp port 80" keepalive

# TCP port reuse: the same client port three times in a row; the HTTP/1.0
# server ends each body by closing, so its side holds TIME_WAIT and the
# client may connect again from the same port at once.
reuse() {
	http_srv 127.0.0.1 80 1.0
	# A port of its own each run: a run before may have left TIME_WAIT behind.
	local i port=$((40000 + RANDOM % 10000))
	for i in 1 2 3; do
		curl_ --http1.0 --local-port "$port" "http://$NAME/a?try=$i"
		sleep 0.2
	done
}
want lo-port-reuse && record lo-port-reuse lo "tcp port 80" reuse

# IPv6 loopback: HTTP/1.1 over TLS 1.2 to s_server on ::1, and cleartext.
v6tls() {
	bg timeout 30 openssl s_server -accept '[::1]:443' -cert "$WORK/server.pem" -key "$WORK/server.key" -www -naccept 1 -tls1_2
	wait_port tcp 443
	SSLKEYLOGFILE="$OUT/lo-ipv6-curl-tls12.keylog" timeout 20 curl -sS -o /dev/null --cacert "$WORK/ca.pem" \
		--resolve "[$NAME]:443:[::1]" --resolve "$NAME:443:::1" --http1.1 --tls-max 1.2 "https://$NAME/v6"
}
want lo-ipv6-curl-tls12 && record lo-ipv6-curl-tls12 lo "tcp port 443" v6tls
v6http() {
	http_srv ::1 80 1.1
	timeout 20 curl -sS -g --http1.1 "http://[::1]/a" "http://[::1]/b" >/dev/null
}
want lo-ipv6-http && record lo-ipv6-http lo "tcp port 80" v6http

# Linux cooked captures: tcpdump -i any writes SLL2, or SLL with -y LINUX_SLL.
any_h2() {
	bg timeout 30 nghttpd -d "$WORK/htdocs" 443 "$WORK/server.key" "$WORK/chain.pem"
	wait_port tcp 443
	SSLKEYLOGFILE="$OUT/lo-any-sll2-h2.keylog" curl_ --http2 "https://$NAME/a"
}
any_h1() {
	s_server_www 443
	SSLKEYLOGFILE="$OUT/lo-any-sll-h1.keylog" curl_ --http1.1 "https://$NAME/a"
}
want lo-any-sll2-h2 && record lo-any-sll2-h2 any "tcp port 443" any_h2
want lo-any-sll-h1 && TCPDUMP_OPTS="-y LINUX_SLL" record lo-any-sll-h1 any "tcp port 443" any_h1

# --- DTLS 1.2 over UDP ----------------------------------------------------------
dtls() {
	# s_server's echo mode stops at the end of its input: give it one that
	# stays open.
	bg timeout 30 sh -c 'sleep 25 | openssl s_server -dtls1_2 -accept 127.0.0.1:4433 -cert "$1" -key "$2" -naccept 1' sh \
		"$WORK/server.pem" "$WORK/server.key"
	wait_port udp 4433
	{
		echo "hello over DTLS"
		sleep 0.5
		echo Q
	} | timeout 20 openssl s_client -dtls1_2 -connect 127.0.0.1:4433 -servername "$NAME" -CAfile "$WORK/ca.pem" \
		-keylogfile "$OUT/lo-dtls12.keylog" >"$WORK/dtls.out" 2>&1
	grep -q "Verify return code: 0" "$WORK/dtls.out" || { cat "$WORK/dtls.out" >&2; return 1; }
}
want lo-dtls12 && record lo-dtls12 lo "udp port 4433" dtls

log "done"
