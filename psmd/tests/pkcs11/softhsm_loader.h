/* softhsm_loader.h: what psmd's wrapper test modules share: loading the
 * real SoftHSM module they forward to. Include after <p11-kit/pkcs11.h>. */
#ifndef PSM_SOFTHSM_LOADER_H
#define PSM_SOFTHSM_LOADER_H

#include <dlfcn.h>
#include <stddef.h>

#ifndef SOFTHSM_PATH
#define SOFTHSM_PATH "/usr/lib/softhsm/libsofthsm2.so"
#endif

/* SoftHSM's function list, loaded on the first call; NULL if it cannot be. */
static CK_FUNCTION_LIST_PTR load_softhsm(void)
{
    static CK_FUNCTION_LIST_PTR functions = NULL;
    void *lib;
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = NULL;

    if (functions != NULL) {
        return functions;
    }
    lib = dlopen(SOFTHSM_PATH, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        return NULL;
    }
    /* POSIX: the way to turn dlsym's object pointer into a function pointer. */
    *(void **)(&get) = dlsym(lib, "C_GetFunctionList");
    if (get == NULL || get(&functions) != CKR_OK) {
        functions = NULL;
    }
    return functions;
}

#endif /* PSM_SOFTHSM_LOADER_H */
