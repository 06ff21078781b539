/* A PKCS#11 module for psmd's tests that behaves like a hung token: it
 * forwards every call to SoftHSM, except C_Sign, which first sleeps for an
 * hour. It exports only C_GetFunctionList (a PKCS#11 2.40 module).
 *
 * SoftHSM is loaded once per process, so this module shares it with the
 * plain SoftHSM module a test loads next to it: C_Finalize here does
 * nothing, to leave SoftHSM initialized for the other. */
#include <p11-kit/pkcs11.h>
#include <stddef.h>
#include <unistd.h>

#include "softhsm_loader.h"

#define SLEEP_SECONDS 3600

static CK_FUNCTION_LIST wrapped;
static CK_FUNCTION_LIST_PTR real = NULL;

static CK_RV sleepy_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                         CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    sleep(SLEEP_SECONDS);
    return real->C_Sign(session, data, data_len, sig, sig_len);
}

static CK_RV keep_initialized(CK_VOID_PTR reserved)
{
    (void)reserved;
    return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (list == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    if (real == NULL) {
        real = load_softhsm();
        if (real == NULL) {
            return CKR_GENERAL_ERROR;
        }
        wrapped = *real;
        wrapped.C_Sign = sleepy_sign;
        wrapped.C_Finalize = keep_initialized;
    }
    *list = &wrapped;
    return CKR_OK;
}
