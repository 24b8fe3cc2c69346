// The command line of the `lockstep` program: subcommands and their options, defined once
// with CLI11 (which also generates the help text from these definitions).
#pragma once

namespace lockstep {
class Comm;
// Runs the command given by argv on this rank; returns the process exit code.
int run_cli(int argc, char** argv, Comm& comm);
}  // namespace lockstep
