/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Debian's libmicrohttpd.a is built with HTTPS support (GnuTLS), and Debian ships no static
 * libp11-kit or libunistring, so GnuTLS cannot be linked into the static cubicle binary.
 * cubicle never asks libmicrohttpd for TLS (no MHD_USE_TLS: the API is a Unix socket), so
 * none of these entry points is reachable; they stand in for GnuTLS at link time only and
 * fail (GNUTLS_E_INTERNAL_ERROR-style) if anything ever called them. Linked only into the
 * static binary (meson.build); a dynamic build uses the real libraries.
 */
#include <stddef.h>
#include <stdlib.h>

#define NO_TLS_FAIL (-59) /* GNUTLS_E_INTERNAL_ERROR */

/* Called by libmicrohttpd's library constructor: succeeds, does nothing. */
int gnutls_global_init(void);
int gnutls_global_init(void)
{
	return 0;
}

void *(*gnutls_malloc)(size_t) = malloc;

const char *gnutls_strerror(int error);
const char *gnutls_strerror(int error)
{
	return "TLS is not available in cubicle";
}

void *gnutls_session_get_ptr(void *session);
void *gnutls_session_get_ptr(void *session)
{
	return NULL;
}

/* The rest take arguments the callers pass and ignore (x86-64 ABI: the caller cleans up). */
#define NO_TLS(name)                \
	long name(void);            \
	long name(void)             \
	{                           \
		return NO_TLS_FAIL; \
	}

NO_TLS(gnutls_alpn_set_protocols)
NO_TLS(gnutls_bye)
NO_TLS(gnutls_certificate_allocate_credentials)
NO_TLS(gnutls_certificate_free_credentials)
NO_TLS(gnutls_certificate_server_set_request)
NO_TLS(gnutls_certificate_set_dh_params)
NO_TLS(gnutls_certificate_set_retrieve_function2)
NO_TLS(gnutls_certificate_set_retrieve_function3)
NO_TLS(gnutls_certificate_set_x509_key_mem)
NO_TLS(gnutls_certificate_set_x509_key_mem2)
NO_TLS(gnutls_certificate_set_x509_trust_mem)
NO_TLS(gnutls_cipher_get)
NO_TLS(gnutls_credentials_set)
NO_TLS(gnutls_deinit)
NO_TLS(gnutls_dh_params_deinit)
NO_TLS(gnutls_dh_params_import_pkcs3)
NO_TLS(gnutls_dh_params_init)
NO_TLS(gnutls_global_deinit)
NO_TLS(gnutls_handshake)
NO_TLS(gnutls_init)
NO_TLS(gnutls_priority_deinit)
NO_TLS(gnutls_priority_init)
NO_TLS(gnutls_priority_set)
NO_TLS(gnutls_protocol_get_version)
NO_TLS(gnutls_psk_allocate_server_credentials)
NO_TLS(gnutls_psk_free_server_credentials)
NO_TLS(gnutls_psk_set_server_credentials_function)
NO_TLS(gnutls_record_check_pending)
NO_TLS(gnutls_record_get_direction)
NO_TLS(gnutls_record_recv)
NO_TLS(gnutls_record_send)
NO_TLS(gnutls_session_set_ptr)
NO_TLS(gnutls_transport_set_int2)
