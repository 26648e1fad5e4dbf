/* Runs the tokenizer suite (CK_FORK=no to debug in one process). */
#include <check.h>
#include <stdlib.h>

Suite *tokenizer_suite(void);

int main(void) {
    SRunner *sr = srunner_create(tokenizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
