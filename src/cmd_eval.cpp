// `lockstep eval` (a checkpoint on the validation and test sets, across ranks, and optionally its
// inference throughput) and `lockstep inspect` (a human summary of a checkpoint file, on rank 0).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "lockstep/agree.hpp"
#include "lockstep/check.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/config_agree.hpp"
#include "lockstep/data_fingerprint.hpp"
#include "lockstep/dataset.hpp"
#include "lockstep/device.hpp"
#include "lockstep/evaluate.hpp"
#include "lockstep/exit_codes.hpp"
#include "lockstep/launch.hpp"
#include "lockstep/memory_plan.hpp"
#include "lockstep/progress.hpp"
#include "lockstep/runtime.hpp"

namespace lockstep {
namespace {

struct EvalArgs : ConfigArgs {
  std::string checkpoint;
  double time_inference = 0.0;  // seconds of repeated forward passes; 0: no timing
};

// data.val_size of the checkpoint's stored config (fallback when it has none or it does not parse).
int64_t stored_val_size(const CheckpointData& ck, int64_t fallback) {
  if (ck.config_toml.empty()) return fallback;
  try {
    return parse_config_text(ck.config_toml, "the checkpoint's stored config").data.val_size;
  } catch (const UserError&) {
    return fallback;
  }
}

// Forward passes (logits only, batch_rows at a time) over the first rows of data, repeated for
// about `seconds` on each rank, in 5 windows. Rows are staged once before the clock starts, so
// this is the model's compute rate, not the data loader's. Returns this rank's samples per second
// over all windows and in the fastest window (the one least disturbed by other processes).
struct InferenceRate {
  double mean = 0.0, best = 0.0;
};
InferenceRate inference_rate(const Mlp& model, const DataSource& data, int64_t batch_rows, double seconds) {
  Backend& be = model.backend();
  const int64_t n = std::min(batch_rows, data.size());
  Workspace ws(model, n);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), int64_t{0});
  BatchStager stager(be, n, data.dim());
  data.reserve(n);
  const float* x = stager.acquire(data, BatchKey{0, 0, 0}, rows.data(), n).x;
  forward(model, ws, x, n);  // warm-up: caches, page faults, BLAS buffers
  be.synchronize();
  using Clock = std::chrono::steady_clock;
  constexpr int kWindows = 5;
  InferenceRate r;
  int64_t total = 0;
  double total_s = 0.0;
  for (int w = 0; w < kWindows; ++w) {
    const auto start = Clock::now();
    int64_t samples = 0;
    double elapsed = 0.0;
    do {
      forward(model, ws, x, n);
      be.synchronize();
      samples += n;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < seconds / kWindows);
    r.best = std::max(r.best, static_cast<double>(samples) / elapsed);
    total += samples;
    total_s += elapsed;
  }
  r.mean = static_cast<double>(total) / total_s;
  return r;
}

int run_eval(Comm& comm, const EvalArgs& a) {
  const bool root = comm.rank() == 0;
  CheckpointData ck;
  std::string path, note;
  collectively(
      comm,
      [&] {
        if (!root) return;
        const ResumePoint p = resolve_checkpoint_arg(a.checkpoint, "", "--checkpoint");
        path = p.path;
        note = p.note;
        ck = read_checkpoint_or_offer_previous(path, "evaluate it with --checkpoint ");
      },
      std::cerr);
  broadcast_checkpoint(comm, ck, 0);
  // The config: the checkpoint's own unless --config says otherwise, --set on top. What defines the
  // data the model was trained and validated on (seed, split, classes, normalisation) must be the
  // checkpoint's: another split would "validate" on training samples, another transform would
  // score other inputs. The model always comes from the checkpoint, and the training settings
  // are not used; a note lists those set to other values.
  Config cfg;
  std::string unused;
  collectively(
      comm,
      [&] {
        check_launch(comm.size());
        cfg = a.config.empty() ? load_config_text(ck.config_toml, a.checkpoint + " (stored config)", a.sets)
                               : load_config(a.config, a.sets);
        const std::string diff = eval_incompatibilities(ck, cfg);
        LOCKSTEP_REQUIRE(diff.empty(), "cannot evaluate ", a.checkpoint, " with these settings: they define the "
                         "validation split or the input transform, and eval uses those the model was trained with "
                         "(leave them out of --config/--set, or set them to the checkpoint's values):", diff);
        unused = eval_unused_settings(ck, cfg);
        cfg.model.layers = ck.layers;
        cfg.model.activation = ck.activation;
        validate_config(cfg, comm.size());
      },
      std::cerr);
  // Before anything collective depends on them: every rank resolved the same config and arguments.
  agree_on_config(comm, cfg, {{"command", "eval"}, {"--checkpoint", a.checkpoint},
                              {"--time-inference", fmt(a.time_inference)}}, std::cerr);
  // The training file is read only when something needs it: the validation set is drawn from it,
  // standardize takes its statistics from its training rows, or it is what --time-inference times.
  const bool score_val = cfg.data.val_size > 0, has_test = !cfg.data.test_images.empty();
  const bool standardize = cfg.data.normalize == Normalize::standardize;
  std::string needs_train;
  if (score_val) needs_train = fmt("the validation set is drawn from it (data.val_size = ", cfg.data.val_size, ")");
  else if (standardize)
    needs_train = "data.normalize = standardize takes its mean and deviation from the training rows the model was "
                  "trained on";
  else if (!has_test && a.time_inference > 0) needs_train = "--time-inference times it when there is no test set";
  Datasets data;
  DataFingerprint fingerprint;
  collectively(
      comm,
      [&] {
        LOCKSTEP_REQUIRE(score_val || has_test || a.time_inference > 0,
                         "nothing to evaluate: data.val_size is 0 and data.test_images is empty; set one of them "
                         "(--set data.val_size=5000, or --set data.test_images=FILE)");
        if (needs_train.empty()) {
          data = load_test_set(cfg.data, cfg.model.layers.front());
          if (data.test) {  // the training file is not read: only the test set is compared
            fingerprint.test_samples = data.test->size();
            fingerprint.test = fingerprint_of(*data.test);
          }
          return;
        }
        // A missing training file is named with the reason eval reads it.
        auto require_file = [&](const char* key, const std::string& file) {
          std::error_code ec;
          LOCKSTEP_REQUIRE(file.empty() || std::filesystem::is_regular_file(file, ec), key, " = ", file, ": ",
                           std::filesystem::exists(file, ec) ? "not a regular file" : "no such file",
                           "; eval needs the training data here because ", needs_train,
                           score_val && !standardize ? " (to score the test set alone, --set data.val_size=0)" : "");
        };
        require_file("data.train_images", cfg.data.train_images);
        require_file("data.train_labels", cfg.data.train_labels);
        // The split is the checkpoint's: with data.val_size = 0 (no validation set scored) the
        // standardisation statistics still come from the rows the model trained on.
        DataConfig dc = cfg.data;
        if (!score_val) dc.val_size = stored_val_size(ck, cfg.data.val_size);
        data = load_datasets(dc, cfg.model.layers.front(), cfg.run.seed);
        if (!score_val) data.val.reset();
        fingerprint = fingerprint_of(data);
      },
      std::cerr);
  // The accuracy reported is a sum over every rank's share: each must read the same files. (First:
  // a rank's copy that differs is named as such, before the comparison with the checkpoint.)
  agree_on_data(comm, data_files_of(cfg.data, fingerprint), std::cerr);
  if (!needs_train.empty())
    collectively(
        comm,
        [&] {
          const std::string diff = eval_incompatibilities(ck, cfg, &fingerprint);
          LOCKSTEP_REQUIRE(diff.empty(), "cannot evaluate ", a.checkpoint, " on these data: ", needs_train,
                           ", and it is not the file the model was trained on:", diff);
        },
        std::cerr);
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Mlp> model_owner;
  std::unique_ptr<Evaluator> evaluator_owner;
  collectively(
      comm,
      [&] {
        backend = make_backend(cfg, comm, root ? &std::cout : nullptr);
        check_memory(cfg, comm, *backend, MemoryUse::eval);
        model_owner = allocating("the model's parameters (model.layers of the checkpoint)",
                                 [&] { return std::make_unique<Mlp>(*backend, ck.layers, ck.activation); });
        model_owner->set_params(ck.params);
        evaluator_owner = std::make_unique<Evaluator>(*model_owner, cfg.data.eval_batch);
      },
      std::cerr);
  Mlp& model = *model_owner;
  Evaluator& evaluator = *evaluator_owner;
  if (root) {
    if (!note.empty()) std::cout << note << "\n";
    if (!unused.empty())
      std::cout << "note: eval takes the model from the checkpoint and does not train; these settings differ from "
                   "the checkpoint's and are not used:"
                << unused << "\n";
    if (ck.checksums_missing > 0)
      std::cout << "note: " << path << " was written without checksums (" << ck.checksums_missing
                << " datasets and groups not verified)\n";
    std::cout << "checkpoint " << path << ": " << model_summary(cfg, model.num_params()) << ", step "
              << ck.trainer.global_step << std::endl;
  }
  auto report = [&](const char* name, const std::shared_ptr<const DataSource>& d) {
    if (!d) return;
    const EvalResult r = evaluator.run(*d, comm);
    if (root)
      std::cout << std::left << std::setw(11) << name << " accuracy " << std::fixed << std::setprecision(4)
                << r.accuracy << "  loss " << shown(r.loss) << "  (" << r.count << " samples)" << std::endl;
  };
  report("validation", data.val);
  report("test", data.test);
  if (a.time_inference > 0) {
    const std::shared_ptr<const DataSource>& d = data.test ? data.test : data.train;
    const InferenceRate mine = inference_rate(model, *d, cfg.data.eval_batch, a.time_inference);
    double rate[2] = {mine.best, mine.mean};
    double lo[1] = {mine.best};
    comm.allreduce_sum(rate, 2);
    comm.allreduce_min(lo, 1);
    if (root) {
      std::cout << "inference: " << std::fixed << std::setprecision(0) << rate[0] / comm.size()
                << " samples/s per rank in the fastest of 5 windows (mean over all " << rate[1] / comm.size()
                << "; batch " << std::min(cfg.data.eval_batch, d->size()) << ", " << comm.size()
                << " rank(s), slowest rank " << lo[0] << "; " << backend->describe() << ")";
      if (backend->kind() == DeviceKind::cpu) std::cout << ", " << configure_blas_threads() << " BLAS thread(s) per rank";
      std::cout << std::endl;
    }
  }
  return exit_code::ok;
}

int run_inspect(Comm& comm, const std::string& path_arg) {
  CheckpointData ck;
  std::string path, resolve_note;
  collectively(
      comm,
      [&] {
        if (comm.rank() != 0) return;
        const ResumePoint p = resolve_checkpoint_arg(path_arg, "", "inspect");
        path = p.path;
        resolve_note = p.note;
        ck = read_checkpoint_or_offer_previous(path, "inspect it with lockstep inspect ");
      },
      std::cerr);
  if (comm.rank() != 0) return exit_code::ok;
  if (!resolve_note.empty()) std::cout << resolve_note << "\n";
  std::cout << "checkpoint " << path << "\n  format " << ck.format_version << ", written by lockstep "
            << ck.lockstep_version << " at " << ck.created << " on " << ck.world_size << " rank(s), global batch "
            << ck.global_batch << "\n  model:";
  size_t params = 0;
  for (size_t l = 0; l + 1 < ck.layers.size(); ++l) {
    const size_t n = static_cast<size_t>(ck.layers[l] * ck.layers[l + 1] + ck.layers[l + 1]);
    params += n;
    std::cout << "\n    layer " << l << ": weight [" << ck.layers[l + 1] << ", " << ck.layers[l] << "], bias ["
              << ck.layers[l + 1] << "], " << (l + 2 == ck.layers.size() ? "linear" : to_string(ck.activation))
              << " (" << n << " parameters)";
    if (std::find(ck.frozen_layers.begin(), ck.frozen_layers.end(), static_cast<int64_t>(l)) != ck.frozen_layers.end())
      std::cout << ", frozen";
  }
  std::cout << "\n    total " << params << " parameters, checksum "
            << hex64(fnv1a64(ck.params.data(), ck.params.size() * sizeof(float)))
            << "\n  stored checksums: "
            << (ck.checksums_missing == 0 ? fmt(ck.checksums_verified, " verified")
                                          : fmt(ck.checksums_verified, " verified, ", ck.checksums_missing,
                                                " missing (written before checkpoints carried checksums)"))
            << "\n  optimizer: " << to_string(ck.optimizer.name) << ", lr "
            << ck.optimizer.lr << ", weight_decay " << ck.optimizer.weight_decay << ", clip_norm "
            << ck.optimizer.clip_norm << ", " << ck.optimizer_step << " steps, " << ck.optimizer_state.size()
            << " state buffer(s)\n  position: epoch " << ck.trainer.epoch + 1 << ", step " << ck.trainer.step_in_epoch
            << " of the epoch (sample " << ck.trainer.step_in_epoch * ck.global_batch << "), global step "
            << ck.trainer.global_step << ", last lr " << ck.lr << ", seed " << ck.seed << "\n";
  if (ck.trainer.early.has_best) {
    // The stored score is "higher is better": the negated loss for val_loss.
    const Config saved = parse_config_text(ck.config_toml, path + " (stored config)");
    const bool loss = saved.early_stopping.metric == StopMetric::val_loss;
    std::cout << "  early stopping: best " << (loss ? "val_loss " : "val_accuracy ")
              << (loss ? -ck.trainer.early.best : ck.trainer.early.best) << ", " << ck.trainer.early.bad_epochs
              << " epoch(s) without improvement\n";
  }
  // Provenance: the teacher of a distilled student and the source of a fine-tune, then any other note.
  auto note = [&](const char* key) {
    const auto it = ck.notes.find(key);
    return it == ck.notes.end() ? std::string("?") : it->second;
  };
  if (ck.notes.count(kTeacherNote))
    std::cout << "  distilled from teacher " << note(kTeacherNote) << " (" << note(kTeacherModelNote) << ", checksum "
              << note(kTeacherChecksumNote) << ")\n";
  if (ck.notes.count(kInitFromNote))
    std::cout << "  initialised from " << note(kInitFromNote) << " (checksum " << note(kInitFromChecksumNote) << ")\n";
  for (const auto& [k, v] : ck.notes)
    if (k != kTeacherNote && k != kTeacherModelNote && k != kTeacherChecksumNote && k != kInitFromNote &&
        k != kInitFromChecksumNote)
      std::cout << "  " << k << ": " << v << "\n";
  if (!ck.last_metrics_json.empty()) {
    const auto m = nlohmann::json::parse(ck.last_metrics_json);
    std::cout << "  last metrics:";
    for (const char* key : {"epoch", "train_loss", "val_accuracy", "test_accuracy"})
      if (m.contains(key)) std::cout << " " << key << " " << m[key];
    std::cout << "\n";
  }
  std::cout << std::flush;
  return exit_code::ok;
}

}  // namespace

void add_eval_commands(CLI::App& app, CommandTable& table) {
  auto args = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand("eval", "evaluate a checkpoint on the validation and test sets");
  eval->add_option("-k,--checkpoint", args->checkpoint, "checkpoint file, or a checkpoint directory (its latest)")
      ->required();
  add_config_options(eval, *args, /*with_run_dir=*/false);  // eval writes nothing
  eval->footer(
      "The config is the checkpoint's stored one unless --config names another; --set applies on top.\n"
      "The data settings the model was trained with must not change: another run.seed, data.val_size,\n"
      "data.normalize, data.class_subset, data.train_limit or data.classes, or other training data, is\n"
      "refused (exit 2) with each difference listed. The model comes from the checkpoint; model.*,\n"
      "train.*, optimizer.* and the other training settings are not used (a note lists those that\n"
      "differ). --set data.val_size=0 scores the test set only; with data.normalize = scale the training\n"
      "file is then not read (standardize needs it for the training rows' mean and deviation).");
  eval->add_option("--time-inference", args->time_inference,
                   "also measure inference throughput: forward passes of data.eval_batch test samples repeated "
                   "for about this many seconds on every rank (for one core: 1 rank, OPENBLAS_NUM_THREADS=1)")
      ->check(CLI::NonNegativeNumber);
  table.add(eval, [args](Comm& comm) { return run_eval(comm, *args); });

  auto path = std::make_shared<std::string>();
  auto* inspect = app.add_subcommand("inspect", "print a summary of a checkpoint file");
  inspect->add_option("checkpoint", *path, "checkpoint file or directory")->required();
  table.add(inspect, [path](Comm& comm) { return run_inspect(comm, *path); });
}

}  // namespace lockstep
