// Knowledge distillation across ranks, under mpirun -np 1, 2 and 3: a student distilled on p
// ranks equals the one distilled on one rank with the whole batch (within fp32 rounding) and its
// replicas stay bitwise identical; training from the teacher-logits cache gives the result of the
// live teacher; a cache that does not match its teacher or data is refused naming what differs;
// a distillation resumes bit for bit and refuses another teacher.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "lockstep/checkpoint.hpp"
#include "lockstep/checkpointer.hpp"
#include "lockstep/checksum.hpp"
#include "lockstep/comm.hpp"
#include "lockstep/distill.hpp"
#include "lockstep/h5.hpp"
#include "lockstep/h5_dataset.hpp"
#include "lockstep/trainer.hpp"
#include "mpi/mpi_support.hpp"
#include "support/test_support.hpp"
#include "unit/expect_user_error.hpp"

namespace lockstep {
namespace {

// As in test_data_parallel: the same per-sample gradients summed in another order.
constexpr double kSplitRtol = 1e-5;

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }



// A teacher trained briefly on one process (every rank computes the same one).
CheckpointData make_teacher(const std::shared_ptr<const DataSource>& data, uint64_t seed) {
  auto self = make_self_comm();
  auto be = make_cpu_backend();
  Config cfg = test::small_config({10, 24, 4}, 32, 2);
  cfg.run.seed = seed;
  Datasets ds;
  ds.train = data;
  Trainer t(cfg, *self, *be, ds);
  t.run();
  return t.snapshot();
}

Config student_config() {
  Config cfg = test::small_config({10, 6, 4}, 40, 2);
  cfg.distill.teacher = "teacher.h5";
  cfg.distill.temperature = 3.0;
  cfg.distill.alpha = 0.7;
  cfg.checkpoint.every_epochs = 0;
  cfg.checkpoint.at_end = false;
  return cfg;
}

struct Outcome {
  std::vector<float> params;
  std::vector<StepRecord> steps;
  TrainResult result;
};

Outcome distill(Comm& comm, const Config& cfg, const CheckpointData& teacher, Datasets ds, Checkpointer* ckpt = nullptr,
            int64_t stop_at = 0, const std::string& resume_from = "") {
  auto be = make_cpu_backend();
  Outcome run;
  TrainerOptions opts;
  opts.teacher = &teacher;
  opts.checkpointer = ckpt;
  opts.on_step = [&](const StepRecord& s) { run.steps.push_back(s); };
  Trainer* self = nullptr;
  opts.stop_requested = [&] {
    return stop_at > 0 && comm.rank() == comm.size() - 1 && self->state().global_step == stop_at - 1;
  };
  Trainer t(cfg, comm, *be, ds, opts);
  self = &t;
  EXPECT_EQ(t.distiller() != nullptr, true);
  if (!resume_from.empty()) test::restore_from_file(comm, t, resume_from, cfg);
  run.result = t.run();
  run.params = t.model().get_params();
  return run;
}

Datasets train_only(std::shared_ptr<const DataSource> d) {
  Datasets ds;
  ds.train = std::move(d);
  return ds;
}

TEST(Distill, RanksTimesSliceEqualsOneRankWholeBatch) {
  auto comm = make_mpi_comm();
  auto self = make_self_comm();
  auto data = test::synthetic_data(200, 10, 4, 21);  // 200 / 40: 5 steps per epoch, slices of 40/p
  const CheckpointData teacher = make_teacher(data, 5);
  const Config cfg = student_config();
  const Outcome parallel = distill(*comm, cfg, teacher, train_only(data));
  const Outcome single = distill(*self, cfg, teacher, train_only(data));
  ASSERT_EQ(parallel.steps.size(), 10u);
  ASSERT_EQ(parallel.steps.size(), single.steps.size());
  EXPECT_TRUE(test::all_close(parallel.params, as_double(single.params), kSplitRtol, 1e-6));
  for (size_t i = 0; i < single.steps.size(); ++i)
    EXPECT_NEAR(parallel.steps[i].loss, single.steps[i].loss, 1e-6 * single.steps[i].loss) << "step " << i;
  test::expect_same_on_all_ranks(*comm, parallel.params);
  // The teacher was used at all: plain cross-entropy on the same data ends elsewhere.
  Config plain = cfg;
  plain.distill.teacher.clear();
  auto be = make_cpu_backend();
  Trainer t(plain, *comm, *be, train_only(data));
  t.run();
  EXPECT_FALSE(test::all_close(t.model().get_params(), as_double(single.params), 1e-3, 0.0));
}

TEST(Distill, CacheGivesTheResultOfTheLiveTeacher) {
  // The training set is a subset of the file (as after a validation split), so the cache's
  // file-row keys are exercised. Why a tolerance and not bitwise: the live teacher runs on each
  // rank's slice and the cache was computed in blocks of other sizes; a BLAS may pick another
  // kernel (and summation order) for another row count, so a logit can differ in its last bits.
  // 1 ulp in a logit moves each step's gradient by ~1e-7 relative, which the few steps here keep
  // far below kSplitRtol.
  auto comm = make_mpi_comm();
  auto file = test::synthetic_data(230, 10, 4, 22);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 230; ++i)
    if (i % 5 != 0) rows.push_back(i);  // 184 training rows
  auto train = std::make_shared<SubsetData>(file, rows, "training part");
  const CheckpointData teacher = make_teacher(file, 6);
  const std::string dir = test::shared_dir(*comm, "distill-cache");
  const std::string cache = dir + "/logits.h5";
  auto be = make_cpu_backend();
  std::ostringstream err;
  build_teacher_cache(*comm, *be, teacher, "teacher.h5", *file, 4, 17, cache, err);  // blocks of 17 rows per rank
  EXPECT_TRUE(err.str().empty()) << err.str();

  Datasets ds = train_only(train);
  ds.train_file = file;
  Config cfg = student_config();
  const Outcome live = distill(*comm, cfg, teacher, ds);
  cfg.distill.cache = cache;
  {
    Trainer t(cfg, *comm, *be, ds, [&] { TrainerOptions o; o.teacher = &teacher; return o; }());
    ASSERT_TRUE(t.distiller() && t.distiller()->cached());
  }
  const Outcome cached = distill(*comm, cfg, teacher, ds);
  ASSERT_EQ(cached.steps.size(), live.steps.size());
  EXPECT_TRUE(test::all_close(cached.params, as_double(live.params), kSplitRtol, 1e-6));
  for (size_t i = 0; i < live.steps.size(); ++i)
    EXPECT_NEAR(cached.steps[i].loss, live.steps[i].loss, 1e-6 * live.steps[i].loss) << "step " << i;
  test::expect_same_on_all_ranks(*comm, cached.params);

  // The cache holds, for every file row, the teacher's logits (computed here row by row).
  H5Data h5(cache, 4);
  ASSERT_EQ(h5.size(), 230);
  ASSERT_EQ(h5.dim(), 4);
  Mlp tm(*be, teacher.layers, teacher.activation);
  tm.set_params(teacher.params);
  Workspace ws(tm, 1);
  for (int64_t r : {int64_t{0}, int64_t{16}, int64_t{17}, int64_t{229}}) {
    std::vector<float> x(10), logits(4);
    int32_t y = 0, y_cached = 0;
    file->gather(&r, 1, x.data(), &y);
    const float* z = forward(tm, ws, x.data(), 1);
    h5.gather(&r, 1, logits.data(), &y_cached);
    EXPECT_EQ(y_cached, y) << "row " << r;
    EXPECT_TRUE(test::all_close(logits, std::vector<double>(z, z + 4), 1e-5, 1e-6)) << "row " << r;
  }
  comm->barrier();
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

TEST(Distill, MismatchedCacheIsRefusedNamingWhatDiffers) {
  auto comm = make_mpi_comm();
  auto file = test::synthetic_data(120, 10, 4, 23);
  const CheckpointData teacher = make_teacher(file, 7), other = make_teacher(file, 8);
  const std::string dir = test::shared_dir(*comm, "distill-mismatch");
  auto be = make_cpu_backend();
  std::ostringstream err;
  build_teacher_cache(*comm, *be, teacher, "teacher-a.h5", *file, 4, 32, dir + "/a.h5", err);
  Config cfg = student_config();
  cfg.distill.cache = dir + "/a.h5";
  auto attempt = [&](const CheckpointData& t, std::shared_ptr<const DataSource> data) {
    TrainerOptions o;
    o.teacher = &t;
    Trainer trainer(cfg, *comm, *be, train_only(std::move(data)), o);
  };
  EXPECT_NO_THROW(attempt(teacher, file));
  cfg.distill.teacher = "teacher-b.h5";
  EXPECT_TRUE(test::throws_user_error([&] { attempt(other, file); },
                                      {"distill.cache = " + dir + "/a.h5", "made from the teacher teacher-a.h5",
                                       "teacher-b.h5 has checksum"}));
  cfg.distill.teacher = "teacher-a.h5";
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, test::synthetic_data(100, 10, 4, 23)); },
                                      {"holds 120 samples", "the training file synthetic has 100"}));
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, test::synthetic_data(120, 10, 4, 99)); },
                                      {"the label of sample", "another data file"}));
  // Files that are HDF5 but not this teacher's cache: a plain data file, and one that claims the
  // teacher but holds 3 logits per sample.
  if (comm->rank() == 0) {
    const std::vector<int32_t> labels = labels_of(*file);
    for (int width : {4, 3}) {
      const std::string path = dir + (width == 4 ? "/plain.h5" : "/narrow.h5");
      H5WriteOptions o;
      o.classes = 4;
      H5DataWriter w(path, 120, width, o);
      const std::vector<float> zeros(static_cast<size_t>(120 * width), 0.0f);
      w.write_features(0, 120, zeros.data());
      w.write_labels(labels.data());
      w.close();
      if (width == 3) {
        h5::Handle f = h5::open_file(path, true);
        h5::set_attr(f.get(), "kind", std::string("lockstep-teacher-logits"));
        h5::set_attr(f.get(), "teacher", std::string("teacher-a.h5"));
        h5::set_attr(f.get(), "teacher_checksum",
                     hex64(fnv1a64(teacher.params.data(), teacher.params.size() * sizeof(float))));
      }
    }
  }
  comm->barrier();
  cfg.distill.cache = dir + "/plain.h5";
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, file); }, {"plain.h5", "not a teacher-logits cache"}));
  cfg.distill.cache = dir + "/narrow.h5";
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, file); },
                                      {"narrow.h5", "holds 3 logits per sample, but the teacher has 4 classes"}));
  cfg.distill.cache = dir + "/absent.h5";
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, file); }, {"absent.h5", "no such file", "--cache-teacher"}));
  // A teacher that does not fit the student.
  cfg.distill.cache.clear();
  cfg.model.layers = {10, 6, 3};
  cfg.data.classes = 3;
  EXPECT_TRUE(test::throws_user_error([&] { attempt(teacher, test::synthetic_data(120, 10, 3, 1)); },
                                      {"distill.teacher = teacher-a.h5", "teacher has 4 classes but the student 3"}));
  comm->barrier();
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

TEST(Distill, ResumesBitwiseAndRefusesAnotherTeacher) {
  auto comm = make_mpi_comm();
  auto data = test::synthetic_data(170, 10, 4, 24);  // 170 / 40: 5 steps per epoch, the last partial
  const CheckpointData teacher = make_teacher(data, 9);
  Config cfg = student_config();
  cfg.train.epochs = 3;
  const std::string dir = test::shared_dir(*comm, "distill-resume");
  Checkpointer whole_ck(*comm, dir + "/whole", 100, nullptr), part_ck(*comm, dir + "/part", 100, nullptr),
      rest_ck(*comm, dir + "/rest", 100, nullptr);
  const Outcome whole = distill(*comm, cfg, teacher, train_only(data), &whole_ck);
  const Outcome first = distill(*comm, cfg, teacher, train_only(data), &part_ck, 7);
  ASSERT_TRUE(first.result.preempted);
  const std::string ck = dir + "/part/" + checkpoint_file_name(7);
  const Outcome rest = distill(*comm, cfg, teacher, train_only(data), &rest_ck, 0, ck);
  ASSERT_EQ(first.steps.size() + rest.steps.size(), whole.steps.size());
  for (size_t i = 0; i < rest.steps.size(); ++i)
    EXPECT_EQ(rest.steps[i].loss, whole.steps[first.steps.size() + i].loss) << "step " << first.steps.size() + i;
  EXPECT_EQ(std::memcmp(rest.params.data(), whole.params.data(), whole.params.size() * sizeof(float)), 0)
      << "final weights differ from the uninterrupted distillation";

  // The checkpoint names its teacher, and a resume checks it.
  CheckpointData saved;
  if (comm->rank() == 0) saved = read_checkpoint(ck);
  broadcast_checkpoint(*comm, saved, 0);
  EXPECT_EQ(saved.notes.at(kTeacherNote), "teacher.h5");
  EXPECT_EQ(saved.notes.at(kTeacherChecksumNote),
            hex64(fnv1a64(teacher.params.data(), teacher.params.size() * sizeof(float))));
  EXPECT_EQ(saved.notes.at(kTeacherModelNote), "10-24-4 tanh");
  const CheckpointData other = make_teacher(data, 10);
  auto be = make_cpu_backend();
  TrainerOptions o;
  o.teacher = &other;
  Trainer t(cfg, *comm, *be, train_only(data), o);
  EXPECT_TRUE(test::throws_user_error([&] { t.restore(saved); }, {"cannot resume", "distilled from a teacher with checksum"}));
  Config plain = cfg;
  plain.distill.teacher.clear();
  EXPECT_NE(resume_incompatibilities(saved, plain).find("distill.teacher: the checkpoint was distilled"),
            std::string::npos);
  comm->barrier();
  if (comm->rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lockstep
