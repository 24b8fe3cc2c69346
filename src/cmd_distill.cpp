// `lockstep distill`: `lockstep train` with a teacher (docs/distillation.md). The options name
// the teacher and the teacher-logits cache; the training itself is run_train's (cmd_train.cpp).
#include "commands.hpp"

namespace lockstep {

void add_distill_command(CLI::App& app, CommandTable& table) {
  auto args = std::make_shared<TrainArgs>();
  args->distill = true;
  auto* cmd = app.add_subcommand("distill", "train a student model on a teacher's soft targets ([distill] keys)");
  cmd->add_option("-t,--teacher", args->teacher, "teacher checkpoint (overrides distill.teacher)");
  add_config_options(cmd, *args);
  cmd->add_option("-r,--resume", args->resume,
                  "continue from a checkpoint: auto (the run's latest, or a fresh start when the run directory "
                  "holds none), a checkpoint file, or a checkpoint directory; without --config the run's stored "
                  "config is used (the checkpoint's, else the run directory's config.toml)");
  cmd->add_flag("--cache-teacher", args->cache_teacher,
                "compute the teacher's logits for every training sample once into distill.cache (default "
                "<run dir>/teacher-logits.h5; an existing matching file is reused), then train from it");
  table.add(cmd, [args](Comm& comm) { return run_train(comm, *args); });
}

}  // namespace lockstep
