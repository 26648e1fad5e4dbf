/* The daemon test executable: unit suites, then integration suites against a real searchd. */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"

int main(void) {
    if (td_template_build() != 0) {
        fprintf(stderr, "could not build the tuned template state\n");
        return 1;
    }
    SRunner *sr = srunner_create(sp_suite());
    srunner_add_suite(sr, store_suite());
    srunner_add_suite(sr, rpc_suite());
    srunner_add_suite(sr, state_suite());
    srunner_add_suite(sr, cli_suite());
    srunner_add_suite(sr, families_suite());
    srunner_add_suite(sr, integrity_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    td_template_remove();
    return failed == 0 ? 0 : 1;
}
