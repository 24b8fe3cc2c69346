// Stop requests by signal: SIGUSR1 (Slurm's warning ahead of the time limit) and SIGTERM
// (preemption) set a flag; the trainer reads it at each step boundary and reduces it across
// ranks, so all ranks checkpoint at the same step and exit with exit_code::preempted.
// The flag is the one piece of process-wide state in lockstep: a signal handler has no other
// way to report, and it is only read through stop_signal_received().
#pragma once

namespace lockstep {

void install_stop_signal_handlers();
bool stop_signal_received();
int stop_signal_number();  // the signal that arrived, or 0

}  // namespace lockstep
