#include <algorithm>
#include <map>
#include <sstream>

#include "aurora/runtime/exchange_plan.hpp"

namespace aurora::runtime {

TrafficMatrix TrafficMatrix::transposed() const {
  TrafficMatrix t;
  t.num_ranks = num_ranks;
  t.bytes.assign(bytes.size(), 0);
  for (int32_t s = 0; s < num_ranks; ++s) {
    for (int32_t d = 0; d < num_ranks; ++d) t.bytes[static_cast<size_t>(d * num_ranks + s)] = at(s, d);
  }
  return t;
}

double exchange_lower_bound_seconds(const TrafficMatrix& traffic, double link_gbps) {
  const int32_t n = traffic.num_ranks;
  int64_t worst = 0;
  for (int32_t r = 0; r < n; ++r) {
    int64_t send = 0, recv = 0;
    for (int32_t o = 0; o < n; ++o) {
      if (o == r) continue;
      send += traffic.at(r, o);
      recv += traffic.at(o, r);
    }
    worst = std::max({worst, send, recv});
  }
  return static_cast<double>(worst) * 8.0 / (link_gbps * 1e9);
}

namespace {

class AllAtOncePlanner final : public ExchangePlanner {
 public:
  explicit AllAtOncePlanner(double link_gbps) : link_gbps_(link_gbps) {}
  std::string name() const override { return "all-at-once"; }
  const ExchangePlan& plan(const TrafficMatrix& traffic) override {
    plan_.phases.resize(1);
    auto& phase = plan_.phases[0];
    phase.clear();
    for (int32_t s = 0; s < traffic.num_ranks; ++s) {
      for (int32_t d = 0; d < traffic.num_ranks; ++d) {
        if (s != d && traffic.at(s, d) > 0) phase.push_back(Transfer{s, d, traffic.at(s, d)});
      }
    }
    if (phase.empty()) plan_.phases.clear();
    plan_.lower_bound_seconds = exchange_lower_bound_seconds(traffic, link_gbps_);
    plan_.estimated_seconds = plan_.lower_bound_seconds;
    return plan_;
  }

 private:
  double link_gbps_;
  ExchangePlan plan_;
};

}  // namespace

std::unique_ptr<ExchangePlanner> make_all_at_once_planner(double link_gbps) {
  return std::make_unique<AllAtOncePlanner>(link_gbps);
}

std::string check_plan(const ExchangePlan& plan, const TrafficMatrix& traffic) {
  std::map<std::pair<int32_t, int32_t>, int64_t> covered;
  for (size_t p = 0; p < plan.phases.size(); ++p) {
    for (const auto& t : plan.phases[p]) {
      if (t.src < 0 || t.dst < 0 || t.src >= traffic.num_ranks || t.dst >= traffic.num_ranks) {
        return "phase " + std::to_string(p) + ": transfer " + std::to_string(t.src) + "->" + std::to_string(t.dst) +
               " names a rank outside [0, " + std::to_string(traffic.num_ranks) + ")";
      }
      if (t.src == t.dst) return "phase " + std::to_string(p) + ": local transfer " + std::to_string(t.src);
      if (t.bytes <= 0) return "phase " + std::to_string(p) + ": empty transfer";
      covered[{t.src, t.dst}] += t.bytes;
    }
  }
  for (int32_t s = 0; s < traffic.num_ranks; ++s) {
    for (int32_t d = 0; d < traffic.num_ranks; ++d) {
      if (s == d) continue;
      auto it = covered.find({s, d});
      const int64_t got = it == covered.end() ? 0 : it->second;
      if (got != traffic.at(s, d)) {
        std::ostringstream out;
        out << "pair " << s << "->" << d << ": plan moves " << got << " bytes, traffic has " << traffic.at(s, d);
        return out.str();
      }
    }
  }
  return "";
}

}  // namespace aurora::runtime
