// Test helpers (see test_support.hpp).
#include "support/test_support.hpp"

#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "lockstep/rng.hpp"

namespace lockstep::test {

nlohmann::json load_fixture(const std::string& name) {
  const std::string path = std::string(LOCKSTEP_FIXTURE_DIR) + "/" + name;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing fixture " + path);
  return nlohmann::json::parse(f);
}

namespace {
template <typename T>
::testing::AssertionResult close_impl(const std::vector<T>& a, const std::vector<double>& e, double rtol,
                                      double atol_scale) {
  if (a.size() != e.size())
    return ::testing::AssertionFailure() << "size " << a.size() << " != expected " << e.size();
  double scale = 0.0;
  for (double v : e) scale = std::max(scale, std::fabs(v));
  const double atol = atol_scale * scale;
  int bad = 0;
  std::ostringstream os;
  for (size_t i = 0; i < a.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(a[i]) - e[i]);
    if (!(diff <= rtol * std::fabs(e[i]) + atol)) {
      if (bad < 5) os << "\n  [" << i << "] got " << static_cast<double>(a[i]) << " expected " << e[i] << " (diff " << diff << ")";
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements differ beyond rtol " << rtol
                                       << " + atol " << atol << os.str();
}
}  // namespace

::testing::AssertionResult all_close(const std::vector<double>& a, const std::vector<double>& e, double rtol,
                                     double atol_scale) {
  return close_impl(a, e, rtol, atol_scale);
}
::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<double>& e, double rtol,
                                     double atol_scale) {
  return close_impl(a, e, rtol, atol_scale);
}

std::vector<double> to_doubles(const nlohmann::json& arr) { return arr.get<std::vector<double>>(); }
std::vector<float> to_floats(const nlohmann::json& arr) {
  std::vector<float> out;
  for (const auto& v : arr) out.push_back(static_cast<float>(v.get<double>()));
  return out;
}

std::shared_ptr<MemoryData> synthetic_data(int64_t n, int64_t dim, int classes, uint64_t seed) {
  Rng rng(seed, Stream::test, 0);
  std::vector<double> w(static_cast<size_t>(dim * classes));
  for (auto& v : w) v = rng.normal();
  std::vector<float> x(static_cast<size_t>(n * dim));
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < dim; ++j) x[i * dim + j] = static_cast<float>(2.0 * rng.uniform01() - 1.0);
    int best = 0;
    double best_score = -1e300;
    for (int c = 0; c < classes; ++c) {
      double s = 0.0;
      for (int64_t j = 0; j < dim; ++j) s += w[c * dim + j] * x[i * dim + j];
      if (s > best_score) {
        best_score = s;
        best = c;
      }
    }
    y[i] = best;
  }
  return std::make_shared<MemoryData>("synthetic", dim, classes, std::move(x), std::move(y));
}

Config small_config(std::vector<int64_t> layers, int64_t batch, int64_t epochs) {
  Config c;
  c.data.classes = static_cast<int>(layers.back());
  c.data.val_size = 0;
  c.data.eval_batch = 64;
  c.model.layers = std::move(layers);
  c.model.activation = Activation::tanh;
  c.train.batch_size = batch;
  c.train.epochs = epochs;
  c.train.progress = false;
  c.optimizer.name = OptimizerKind::adam;
  c.optimizer.lr = 0.01;
  return c;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lockstep-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("gzopen " + path);
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return;
  }
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

}  // namespace lockstep::test
