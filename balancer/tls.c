/*
 * TLS termination: one server context shared by every worker (SSL_CTX is safe to share once
 * set up); conn.c drives each connection's SSL over its socket. TLS 1.2 and 1.3 only,
 * forward-secret AEAD ciphers, no renegotiation, no compression.
 */
#include "lb.h"

#include <openssl/err.h>

#include "log.h"

/* Logs the OpenSSL error queue under what, one line per entry. */
static void
tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];
	int any = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("%s: %s", what, buf);
		any = 1;
	}
	if (!any)
		log_warnx("%s: failed", what);
}

SSL_CTX *
tls_ctx_new(const char *cert, const char *key)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	/* A client that closes without close_notify ends the connection as a plain EOF: its
	 * requests are framed, so nothing can be cut off unnoticed. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* One read(2) brings every record that arrived, not a header and then a body. The
	 * buffers stay with the connection (no SSL_MODE_RELEASE_BUFFERS), and a write repeated
	 * after WANT_WRITE may come from a moved evbuffer. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_clear_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* TLS 1.2: ECDHE with AES-GCM or ChaCha20-Poly1305 only; 1.3 suites are all AEAD. */
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_log_errors(cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_errors(key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
 fail:
	tls_log_errors("TLS context");
	SSL_CTX_free(ctx);
	return NULL;
}
