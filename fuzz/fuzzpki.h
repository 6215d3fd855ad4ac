/* The fixed world of the fuzz harnesses: a deterministic test PKI, a trust store holding its
 * root, a per-process scratch directory and a fixed clock, all built once per process. */
#ifndef STAPLER_FUZZPKI_H
#define STAPLER_FUZZPKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certs.h"
#include "testpki.h"

/* 2026-01-01T00:00:00Z: every certificate and seed response is valid then. */
#define FUZZ_NOW ((time_t)1767225600)
/* The leaf's serial and AIA OCSP URL. */
#define FUZZ_LEAF_SERIAL 0x2a
#define FUZZ_OCSP_URL "http://ocsp.fuzz.test/"

/* Root CA -> issuing CA -> leaf, and a delegated OCSP responder certified by the issuing CA.
 * Their keys come from testpki_key_seeded(), so seeds signed once keep verifying. */
struct fuzz_pki {
	struct testpki_ent root;
	struct testpki_ent ca;
	struct testpki_ent leaf;
	struct testpki_ent responder;
};

/* Built on first use; owned here for the life of the process. */
const struct fuzz_pki *fuzz_pki(void);
/* A trust store holding the root alone (certs_trust_load() of a PEM written once). */
const struct certs_trust *fuzz_trust(void);
/* An empty directory of this process, removed at exit. */
const char *fuzz_tmpdir(void);

/* Reports a broken property of the code under test ("what") and aborts, so that libFuzzer
 * keeps the input; returns when cond holds. */
void fuzz_check(int cond, const char *what);

/* libFuzzer's entry point, which each harness defines; fuzz/replay.c calls it too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
