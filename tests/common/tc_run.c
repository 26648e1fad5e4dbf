#include "tc_run.h"

#include <stdarg.h>
#include <stdlib.h>

int tc_run(Suite *first, ...) {
    SRunner *sr = srunner_create(first);
    va_list ap;
    va_start(ap, first);
    for (Suite *s; (s = va_arg(ap, Suite *)) != NULL;)
        srunner_add_suite(sr, s);
    va_end(ap);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
