/* no_entry.c: a TEST-ONLY library that forgot to export troupe_module_entry. */
int troupe_module_entry_typo(void) {
    return 1;
}
