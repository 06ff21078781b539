/* smime_fixture.h: what the S/MIME tests share: their PKI
 * (make-smime-pki.sh) imported into psmd, messages with LF and CRLF line
 * ends, and the openssl command line run in the PKI's directory. Every
 * helper fails the test (check.h) instead of returning an error. */

#ifndef PSM_SMIME_FIXTURE_H
#define PSM_SMIME_FIXTURE_H

#include <psm.h>

#include <stddef.h>
#include <stdint.h>

/* The PKCS#12 password of make-smime-pki.sh. */
#define SMIME_P12_PASSWORD "smime pw"

/* Makes the PKI of make-smime-pki.sh ($PSM_SMIME_PKI) in
 * <fixture_dir>/smime-pki on the first call and returns that directory. */
const char *smime_pki_dir(void);

/* The path of a file of the S/MIME PKI ("alice.pem") into out (cap bytes). */
void smime_pki_path(const char *name, char *out, size_t cap);

/* The people of the PKI as psmd holds them after smime_connect. */
typedef struct {
    psm_cert *root;  /* trusted as a CA for e-mail */
    psm_cert *alice; /* RSA, with her key */
    psm_cert *carol; /* P-256, with her key */
} smime_people;

/* A connection to the test's psmd with the PKI imported: root.pem with
 * PSM_TRUST_CA_EMAIL, alice.p12 and carol.p12 (keys into the token). */
psm_conn *smime_connect(const char *app_name, smime_people *people);

void smime_people_free(smime_people *people);

/* A test message, a MIME entity with LF line ends (as a program holds
 * it), and the same with CRLF line ends (as S/MIME signs and encrypts it). */
extern const char smime_message_lf[];
extern const char smime_message_crlf[];

/* Runs `openssl ARGS` in smime_pki_dir() (so ARGS can name the PKI's
 * files), with stdout and stderr together into out (cap bytes); returns
 * its exit status. */
int openssl_run(const char *args, char *out, size_t cap);

/* openssl_run that must exit 0; prints the command and what it said if not. */
void openssl_must(const char *args);

/* True if the file holds exactly these bytes; prints the difference if not. */
int file_equals(const char *path, const void *data, size_t len);

/* `openssl cms -cmsout -print` of a file (-inform FORM) must mention `needle`. */
void cms_print_mentions(const char *path, const char *form, const char *needle);

#endif /* PSM_SMIME_FIXTURE_H */
