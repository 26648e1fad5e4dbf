/* Runs the tokenizer suite (CK_FORK=no to debug in one process). */
#include "tests/common/tc_run.h"

Suite *tokenizer_suite(void);

int main(void) {
    return tc_run(tokenizer_suite(), NULL);
}
