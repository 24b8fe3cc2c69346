// The stop-request flag and its signal handlers (see signals.hpp).
#include "lockstep/signals.hpp"

#include <csignal>

namespace lockstep {
namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking calls resume; the flag is polled at step boundaries
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_signal_received() { return g_stop_signal != 0; }
int stop_signal_number() { return g_stop_signal; }

}  // namespace lockstep
