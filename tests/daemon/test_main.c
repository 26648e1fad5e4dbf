/* The daemon test executable: unit suites, then integration suites against a real searchd. */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "tests/common/tc_run.h"

int main(void) {
    if (td_template_build() != 0) {
        fprintf(stderr, "could not build the tuned template state\n");
        return EXIT_FAILURE;
    }
    int rc = tc_run(sp_suite(), store_suite(), rpc_suite(), state_suite(), cli_suite(),
                    families_suite(), integrity_suite(), fleet_suite(), NULL);
    td_template_remove();
    return rc;
}
