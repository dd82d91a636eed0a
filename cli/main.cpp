#include "cli/cli.h"

int main(int argc, char** argv) { return rekey::run_cli(argc, argv); }
