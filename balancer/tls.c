/*
 * TLS termination: one server context shared by every worker (SSL_CTX is safe to share once
 * set up), and the per-connection bufferevent from libevent_openssl. TLS 1.2 and 1.3 only,
 * forward-secret AEAD ciphers, no renegotiation, no compression.
 */
#include "lb.h"

#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
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
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
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

struct bufferevent *
tls_bev_new(struct event_base *base, int fd, SSL_CTX *ctx)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(ctx)) == NULL) {
		close(fd);
		return NULL;
	}
	/* Deferred callbacks: the OpenSSL filter may otherwise call back into the proxy
	 * from inside a write, while the proxy is still in the middle of a callback. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	/* Clients that close without close_notify end the connection as a plain EOF. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}
