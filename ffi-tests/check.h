/* check.h: assertions for the C tests. A failed check prints where it
 * failed, the values, the psm_result text and psm_last_error, then exits 1
 * (which fails the ctest test). Works from any thread. */

#ifndef PSM_CHECK_H
#define PSM_CHECK_H

#include <psm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void check_failed(const char *file, int line, const char *expr, int has_values,
                                long long actual, long long expected)
{
    /* Read before any other psm call replaces it. */
    const char *detail = psm_last_error();
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
    if (has_values) {
        fprintf(stderr, "    actual:   %lld (as psm_result: %s)\n", actual,
                psm_result_str((uint32_t)actual));
        fprintf(stderr, "    expected: %lld (as psm_result: %s)\n", expected,
                psm_result_str((uint32_t)expected));
    }
    fprintf(stderr, "    psm_last_error: \"%s\"\n", detail);
    fflush(stderr);
    exit(1);
}

/* CHECK(cond): cond must be true. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__FILE__, __LINE__, #cond, 0, 0, 0);                                      \
    } while (0)

/* CHECK_EQ(actual, expected): integers (psm_result, sizes, fds) must be equal. */
#define CHECK_EQ(actual, expected)                                                                 \
    do {                                                                                           \
        long long check_a_ = (long long)(actual);                                                  \
        long long check_e_ = (long long)(expected);                                                \
        if (check_a_ != check_e_)                                                                  \
            check_failed(__FILE__, __LINE__, #actual " == " #expected, 1, check_a_, check_e_);     \
    } while (0)

/* CHECK_OK(call): a psm call must return PSM_OK. */
#define CHECK_OK(call) CHECK_EQ((call), PSM_OK)

/* CHECK_NULL_REJECTED(call): a psm call must refuse a NULL argument
 * (PSM_ERR_NULL_PARAMETER) with a message that says which one was NULL. */
#define CHECK_NULL_REJECTED(call)                                                                  \
    do {                                                                                           \
        CHECK_EQ((call), PSM_ERR_NULL_PARAMETER);                                                  \
        CHECK(strstr(psm_last_error(), "NULL") != NULL);                                           \
    } while (0)

#endif /* PSM_CHECK_H */
