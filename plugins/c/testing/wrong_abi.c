/* wrong_abi.c: a TEST-ONLY module built for an ABI version that does not exist. */
#include "troupe_module.h"

static const troupe_module descriptor = {
    .abi_version = 999,
    .name = "wrong_abi",
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
