// The run configuration: one struct per TOML section, defaults in the member initialisers.
// Every key is declared once in config_keys.cpp (name, type, range, documentation); loading,
// --set overrides, the resolved-config dump and `lockstep config-keys` all come from that table.
// Unknown sections or keys, wrong types and out-of-range values are errors naming the key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/activation.hpp"
#include "kernels/optimizer_update.hpp"

namespace lockstep {

enum class Normalize { scale, standardize };
enum class InitKind { auto_, he, xavier };
enum class ScheduleKind { constant, step, exponential, cosine };
enum class StopMetric { val_loss, val_accuracy };
enum class DeviceChoice { cpu, cuda, auto_ };
enum class NonFinitePolicy { stop, skip };

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct RunConfig {
  std::string name = "fashion-mnist-mlp";
  std::string dir;                 // empty: runs/<name>
  uint64_t seed = 42;
  DeviceChoice device = DeviceChoice::cpu;
  bool tf32 = false;               // GPU GEMMs on TF32 tensor cores (faster, ~1e-3 relative error)
  bool allow_shared_gpu = false;   // let several ranks of a node share one GPU
  // CPU gradients of the ranks of a node summed in node-shared memory (MPI between nodes only);
  // false: MPI_Allreduce for all of it.
  bool shared_memory_allreduce = true;
};

struct DataConfig {
  std::string train_images = std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz";
  std::string train_labels = std::string(kFashionMnistDir) + "/train-labels-idx1-ubyte.gz";
  std::string test_images = std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz";
  std::string test_labels = std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz";
  int classes = 10;
  int64_t val_size = 5000;
  Normalize normalize = Normalize::scale;
  int64_t eval_batch = 1000;
  // Train and test on these classes only, relabelled 0..k-1 in this order; empty: all classes.
  std::vector<int64_t> class_subset;
  int64_t train_limit = 0;         // training samples kept (chosen by run.seed) after the split; 0: all
};

struct ModelConfig {
  std::vector<int64_t> layers{784, 256, 128, 10};
  Activation activation = Activation::relu;
  InitKind init = InitKind::auto_;
};

struct TrainConfig {
  int64_t epochs = 20;
  int64_t batch_size = 128;        // global: summed over ranks
  int64_t grad_accum = 1;          // micro-batches per optimizer step
  bool drop_last = false;
  int64_t max_steps = 0;           // 0: no limit
  bool progress = true;            // progress bar when stdout is a terminal
  NonFinitePolicy non_finite = NonFinitePolicy::stop;  // a NaN/inf loss or gradient norm
  int64_t check_replicas_every = 1000;  // compare weight checksums across ranks every N steps; 0: off
};

struct OptimizerConfig {
  OptimizerKind name = OptimizerKind::adam;
  double lr = 1e-3;
  double momentum = 0.9;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double alpha = 0.99;
  double weight_decay = 0.0;
  double clip_norm = 0.0;          // 0: no clipping
};

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t warmup_steps = 0;
  int64_t step_size = 1000;
  double gamma = 0.1;
  int64_t decay_steps = 1000;
  double min_lr = 0.0;
};

struct EarlyStopConfig {
  bool enabled = false;
  StopMetric metric = StopMetric::val_loss;
  int64_t patience = 5;
  double min_delta = 0.0;
};

struct CheckpointConfig {
  std::string dir;                 // empty: <run dir>/checkpoints
  int64_t every_epochs = 1;        // 0: off
  int64_t every_steps = 0;         // 0: off
  int64_t keep = 3;                // periodic checkpoints kept (best.h5 is kept besides)
  bool at_end = true;              // save when training ends
};

// Knowledge distillation (docs/distillation.md): the student trains on
// alpha T^2 KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) CE(student, labels).
struct DistillConfig {
  std::string teacher;             // teacher checkpoint; empty: no distillation
  double temperature = 4.0;        // T
  double alpha = 0.9;              // weight of the teacher's soft targets
  std::string cache;               // teacher-logits HDF5 file; empty: run the teacher live
};

// Transfer learning: initialise from another run's checkpoint, optionally freezing layers.
struct InitConfig {
  std::string from;                // checkpoint whose layers initialise the model; empty: random init
  std::vector<int64_t> freeze;     // layer indices (0 = input layer) whose weights do not train
  bool reset_head = false;         // re-initialise the output layer instead of loading it
};

struct Config {
  RunConfig run;
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  EarlyStopConfig early_stopping;
  CheckpointConfig checkpoint;
  DistillConfig distill;
  InitConfig init;
};

// The classes the model predicts: the size of data.class_subset when it is set, else data.classes.
int model_classes(const DataConfig& d);

// Documentation of one key, for help output.
struct KeyDoc {
  std::string key, type, default_value, doc;
};
std::vector<KeyDoc> config_key_docs();

// Loads defaults, then the TOML file (when path is not empty), then each "section.key=value".
Config load_config(const std::string& path, const std::vector<std::string>& overrides);
// Parses TOML text (for checkpoints' stored configs and tests); origin names it in messages.
Config parse_config_text(const std::string& text, const std::string& origin);
// parse_config_text, then each "section.key=value".
Config load_config_text(const std::string& text, const std::string& origin, const std::vector<std::string>& overrides);

// The resolved configuration as TOML text, every key present.
std::string config_to_toml(const Config& c);

// Checks that involve several keys or the world size. Throws UserError naming the keys.
void validate_config(const Config& c, int world_size);

// Names of enum values, as used in config files.
std::string to_string(Activation a);
std::string to_string(OptimizerKind k);
std::string to_string(ScheduleKind k);
std::string to_string(DeviceChoice d);
std::string run_dir_of(const Config& c);
std::string checkpoint_dir_of(const Config& c);
// The reverse: false when the name is unknown.
bool from_string(const std::string& name, Activation& out);
bool from_string(const std::string& name, OptimizerKind& out);

}  // namespace lockstep
