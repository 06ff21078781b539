/* A PKCS#11 module for psmd's tests whose tokens can be pulled out like a
 * smart card from its reader: it forwards every call to SoftHSM, except
 * while the file named by $PSM_TEST_TOKEN_REMOVED exists. Then every token
 * is removed:
 *
 *  - C_GetSlotList(tokenPresent=TRUE) lists no slots; with FALSE it lists
 *    them all, and C_GetSlotInfo clears CKF_TOKEN_PRESENT;
 *  - calls that name a slot's token (C_GetTokenInfo, C_GetMechanism*,
 *    C_InitToken, C_OpenSession) return CKR_TOKEN_NOT_PRESENT;
 *  - calls on a session (C_Login, C_Logout, C_GetSessionInfo, C_Sign*,
 *    C_Decrypt*, C_FindObjects*, C_GetAttributeValue, ...) return
 *    CKR_DEVICE_REMOVED;
 *  - C_CloseSession and C_CloseAllSessions go through, so a caller can tidy
 *    up (C_CloseSession then says CKR_SESSION_HANDLE_INVALID: the session is
 *    already gone).
 *
 * The first call that finds the file (any call) closes every session on
 * every slot with SoftHSM's C_CloseAllSessions, which logs the token out,
 * as a real removal does. Once the file is gone the token is back, logged
 * out, and sessions opened before the removal stay invalid
 * (CKR_SESSION_HANDLE_INVALID).
 *
 * C_Initialize and C_Finalize are SoftHSM's own: load this module alone,
 * not next to SoftHSM in one process (SoftHSM is one instance per process).
 * It exports only C_GetFunctionList (a PKCS#11 2.40 module). */
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "softhsm_loader.h"

#define REMOVED_ENV "PSM_TEST_TOKEN_REMOVED"
#define MAX_SLOTS 64

static CK_FUNCTION_LIST wrapped;
static CK_FUNCTION_LIST_PTR real = NULL;

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
/* Whether the removal has been noticed (and the sessions closed) since the
 * file last appeared. Guarded by state_lock. */
static int noticed = 0;

/* Closes every session on every slot, which logs SoftHSM's tokens out. */
static void close_everything(void)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG count = MAX_SLOTS;
    CK_ULONG i;

    if (real->C_GetSlotList(CK_FALSE, slots, &count) != CKR_OK) {
        return; /* not initialized: there are no sessions */
    }
    for (i = 0; i < count; i++) {
        (void)real->C_CloseAllSessions(slots[i]);
    }
}

/* Whether the tokens are out now. The first call to see the file closes
 * all sessions; the first to see it gone puts the tokens back. */
static int removed(void)
{
    const char *path = getenv(REMOVED_ENV);
    int out = path != NULL && path[0] != '\0' && access(path, F_OK) == 0;

    pthread_mutex_lock(&state_lock);
    if (out && !noticed) {
        close_everything();
        noticed = 1;
    } else if (!out && noticed) {
        noticed = 0;
    }
    pthread_mutex_unlock(&state_lock);
    return out;
}

static CK_RV removable_get_slot_list(CK_BBOOL token_present, CK_SLOT_ID_PTR list,
                                     CK_ULONG_PTR count)
{
    if (token_present && removed()) {
        if (count == NULL) {
            return CKR_ARGUMENTS_BAD;
        }
        *count = 0;
        return CKR_OK;
    }
    return real->C_GetSlotList(token_present, list, count);
}

static CK_RV removable_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    int out = removed();
    CK_RV rv = real->C_GetSlotInfo(slot, info);

    if (rv == CKR_OK && out) {
        info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
    }
    return rv;
}

/* A wrapper that fails with `error` while the tokens are out and forwards
 * to SoftHSM otherwise. */
#define GUARDED(name, error, params, args)                                                         \
    static CK_RV removable_##name params                                                           \
    {                                                                                              \
        if (removed()) {                                                                           \
            return error;                                                                          \
        }                                                                                          \
        return real->name args;                                                                    \
    }
#define SLOT_CALL(name, params, args) GUARDED(name, CKR_TOKEN_NOT_PRESENT, params, args)
#define SESSION_CALL(name, params, args) GUARDED(name, CKR_DEVICE_REMOVED, params, args)
/* Passes through, after noticing a removal (which may close the session). */
#define NOTICING(name, params, args)                                                               \
    static CK_RV removable_##name params                                                           \
    {                                                                                              \
        (void)removed();                                                                           \
        return real->name args;                                                                    \
    }

NOTICING(C_GetInfo, (CK_INFO_PTR info), (info))
NOTICING(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved),
         (flags, slot, reserved))
NOTICING(C_CloseSession, (CK_SESSION_HANDLE s), (s))
NOTICING(C_CloseAllSessions, (CK_SLOT_ID slot), (slot))
NOTICING(C_GetFunctionStatus, (CK_SESSION_HANDLE s), (s))
NOTICING(C_CancelFunction, (CK_SESSION_HANDLE s), (s))

SLOT_CALL(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))
SLOT_CALL(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count),
          (slot, list, count))
SLOT_CALL(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info),
          (slot, type, info))
SLOT_CALL(C_InitToken,
          (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label),
          (slot, pin, pin_len, label))
SLOT_CALL(C_OpenSession,
          (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
           CK_SESSION_HANDLE_PTR s),
          (slot, flags, app, notify, s))

SESSION_CALL(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG len), (s, pin, len))
SESSION_CALL(C_SetPIN,
             (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old, CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,
              CK_ULONG new_len),
             (s, old, old_len, new_pin, new_len))
SESSION_CALL(C_GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info), (s, info))
SESSION_CALL(C_GetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG_PTR len),
             (s, state, len))
SESSION_CALL(C_SetOperationState,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG len, CK_OBJECT_HANDLE enc,
              CK_OBJECT_HANDLE auth),
             (s, state, len, enc, auth))
SESSION_CALL(C_Login, (CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len),
             (s, user, pin, len))
SESSION_CALL(C_Logout, (CK_SESSION_HANDLE s), (s))
SESSION_CALL(C_CreateObject,
             (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR o),
             (s, t, n, o))
SESSION_CALL(C_CopyObject,
             (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n,
              CK_OBJECT_HANDLE_PTR out),
             (s, o, t, n, out))
SESSION_CALL(C_DestroyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o), (s, o))
SESSION_CALL(C_GetObjectSize, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ULONG_PTR size),
             (s, o, size))
SESSION_CALL(C_GetAttributeValue,
             (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n),
             (s, o, t, n))
SESSION_CALL(C_SetAttributeValue,
             (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n),
             (s, o, t, n))
SESSION_CALL(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, t, n))
SESSION_CALL(C_FindObjects,
             (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n),
             (s, o, max, n))
SESSION_CALL(C_FindObjectsFinal, (CK_SESSION_HANDLE s), (s))

/* The Init, one-shot, Update and Final calls of an operation. */
#define OPERATION(op)                                                                              \
    SESSION_CALL(C_##op##Init, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k),      \
                 (s, m, k))                                                                        \
    SESSION_CALL(C_##op,                                                                           \
                 (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,           \
                  CK_ULONG_PTR out_len),                                                           \
                 (s, in, in_len, out, out_len))                                                    \
    SESSION_CALL(C_##op##Update,                                                                   \
                 (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,           \
                  CK_ULONG_PTR out_len),                                                           \
                 (s, in, in_len, out, out_len))                                                    \
    SESSION_CALL(C_##op##Final, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),      \
                 (s, out, out_len))

OPERATION(Encrypt)
OPERATION(Decrypt)

SESSION_CALL(C_DigestInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m), (s, m))
SESSION_CALL(C_Digest,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
              CK_ULONG_PTR out_len),
             (s, in, in_len, out, out_len))
SESSION_CALL(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG len), (s, in, len))
SESSION_CALL(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE k), (s, k))
SESSION_CALL(C_DigestFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
             (s, out, out_len))

SESSION_CALL(C_SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
SESSION_CALL(C_Sign,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
              CK_ULONG_PTR sig_len),
             (s, in, in_len, sig, sig_len))
SESSION_CALL(C_SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG len), (s, in, len))
SESSION_CALL(C_SignFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len),
             (s, sig, sig_len))
SESSION_CALL(C_SignRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k),
             (s, m, k))
SESSION_CALL(C_SignRecover,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
              CK_ULONG_PTR sig_len),
             (s, in, in_len, sig, sig_len))

SESSION_CALL(C_VerifyInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (s, m, k))
SESSION_CALL(C_Verify,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
              CK_ULONG sig_len),
             (s, in, in_len, sig, sig_len))
SESSION_CALL(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG len), (s, in, len))
SESSION_CALL(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len),
             (s, sig, sig_len))
SESSION_CALL(C_VerifyRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k),
             (s, m, k))
SESSION_CALL(C_VerifyRecover,
             (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len, CK_BYTE_PTR out,
              CK_ULONG_PTR out_len),
             (s, sig, sig_len, out, out_len))

/* The dual-function Update calls. */
#define DUAL(name)                                                                                 \
    SESSION_CALL(name,                                                                             \
                 (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,           \
                  CK_ULONG_PTR out_len),                                                           \
                 (s, in, in_len, out, out_len))
DUAL(C_DigestEncryptUpdate)
DUAL(C_DecryptDigestUpdate)
DUAL(C_SignEncryptUpdate)
DUAL(C_DecryptVerifyUpdate)

SESSION_CALL(C_GenerateKey,
             (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
              CK_OBJECT_HANDLE_PTR k),
             (s, m, t, n, k))
SESSION_CALL(C_GenerateKeyPair,
             (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub_t, CK_ULONG pub_n,
              CK_ATTRIBUTE_PTR priv_t, CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR pub,
              CK_OBJECT_HANDLE_PTR priv),
             (s, m, pub_t, pub_n, priv_t, priv_n, pub, priv))
SESSION_CALL(C_WrapKey,
             (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping,
              CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
             (s, m, wrapping, k, out, out_len))
SESSION_CALL(C_UnwrapKey,
             (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,
              CK_ULONG in_len, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k),
             (s, m, unwrapping, in, in_len, t, n, k))
SESSION_CALL(C_DeriveKey,
             (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR t,
              CK_ULONG n, CK_OBJECT_HANDLE_PTR k),
             (s, m, base, t, n, k))
SESSION_CALL(C_SeedRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG len), (s, seed, len))
SESSION_CALL(C_GenerateRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG len), (s, out, len))

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
        wrapped.C_GetFunctionList = C_GetFunctionList;
        wrapped.C_GetInfo = removable_C_GetInfo;
        wrapped.C_GetSlotList = removable_get_slot_list;
        wrapped.C_GetSlotInfo = removable_get_slot_info;
        wrapped.C_WaitForSlotEvent = removable_C_WaitForSlotEvent;
#define WRAP(name) wrapped.name = removable_##name
        WRAP(C_GetTokenInfo);
        WRAP(C_GetMechanismList);
        WRAP(C_GetMechanismInfo);
        WRAP(C_InitToken);
        WRAP(C_InitPIN);
        WRAP(C_SetPIN);
        WRAP(C_OpenSession);
        WRAP(C_CloseSession);
        WRAP(C_CloseAllSessions);
        WRAP(C_GetSessionInfo);
        WRAP(C_GetOperationState);
        WRAP(C_SetOperationState);
        WRAP(C_Login);
        WRAP(C_Logout);
        WRAP(C_CreateObject);
        WRAP(C_CopyObject);
        WRAP(C_DestroyObject);
        WRAP(C_GetObjectSize);
        WRAP(C_GetAttributeValue);
        WRAP(C_SetAttributeValue);
        WRAP(C_FindObjectsInit);
        WRAP(C_FindObjects);
        WRAP(C_FindObjectsFinal);
        WRAP(C_EncryptInit);
        WRAP(C_Encrypt);
        WRAP(C_EncryptUpdate);
        WRAP(C_EncryptFinal);
        WRAP(C_DecryptInit);
        WRAP(C_Decrypt);
        WRAP(C_DecryptUpdate);
        WRAP(C_DecryptFinal);
        WRAP(C_DigestInit);
        WRAP(C_Digest);
        WRAP(C_DigestUpdate);
        WRAP(C_DigestKey);
        WRAP(C_DigestFinal);
        WRAP(C_SignInit);
        WRAP(C_Sign);
        WRAP(C_SignUpdate);
        WRAP(C_SignFinal);
        WRAP(C_SignRecoverInit);
        WRAP(C_SignRecover);
        WRAP(C_VerifyInit);
        WRAP(C_Verify);
        WRAP(C_VerifyUpdate);
        WRAP(C_VerifyFinal);
        WRAP(C_VerifyRecoverInit);
        WRAP(C_VerifyRecover);
        WRAP(C_DigestEncryptUpdate);
        WRAP(C_DecryptDigestUpdate);
        WRAP(C_SignEncryptUpdate);
        WRAP(C_DecryptVerifyUpdate);
        WRAP(C_GenerateKey);
        WRAP(C_GenerateKeyPair);
        WRAP(C_WrapKey);
        WRAP(C_UnwrapKey);
        WRAP(C_DeriveKey);
        WRAP(C_SeedRandom);
        WRAP(C_GenerateRandom);
        WRAP(C_GetFunctionStatus);
        WRAP(C_CancelFunction);
#undef WRAP
    }
    *list = &wrapped;
    return CKR_OK;
}
