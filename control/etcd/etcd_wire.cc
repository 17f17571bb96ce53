// etcd v3 JSON gateway wire format; see etcd_wire.h.
#include "control/etcd/etcd_wire.h"

#include <array>
#include <charconv>

namespace exitgw::etcd {
namespace {

using nlohmann::json;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Replies nest four deep (result.events[].kv); anything much deeper is not etcd.
constexpr int kMaxDepth = 16;

constexpr std::array<int8_t, 256> decode_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kDecode = decode_table();

// Nesting depth of a JSON text, strings skipped; cheap, and keeps the parser's stack bounded.
bool depth_ok(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxDepth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

Result<json> parse_object(std::string_view text) {
  if (!depth_ok(text)) return make_error("JSON nests deeper than " + std::to_string(kMaxDepth));
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("not JSON");
  if (!j.is_object()) return make_error("not a JSON object");
  return j;
}

const json* field(const json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

Result<std::string> bytes_field(const json& object, std::string_view name) {
  const json* f = field(object, name);
  if (f == nullptr || f->is_null()) return std::string();
  if (!f->is_string()) return make_error("'" + std::string(name) + "' is not a string");
  auto decoded = base64_decode(f->get_ref<const std::string&>());
  if (!decoded) return make_error("'" + std::string(name) + "' is not base64");
  return std::move(*decoded);
}

Result<bool> bool_field(const json& object, std::string_view name) {
  const json* f = field(object, name);
  if (f == nullptr || f->is_null()) return false;
  if (!f->is_boolean()) return make_error("'" + std::string(name) + "' is not a boolean");
  return f->get<bool>();
}

Result<KeyValue> parse_kv(const json& j) {
  if (!j.is_object()) return make_error("a kv is not an object");
  KeyValue kv;
  auto key = bytes_field(j, "key");
  if (!key) return make_error(key.error());
  kv.key = std::move(*key);
  auto value = bytes_field(j, "value");
  if (!value) return make_error(value.error());
  kv.value = std::move(*value);
  for (auto [name, out] : {std::pair<const char*, int64_t*>{"create_revision", &kv.create_revision},
                           {"mod_revision", &kv.mod_revision},
                           {"version", &kv.version},
                           {"lease", &kv.lease}}) {
    auto v = json_int64(j, name);
    if (!v) return make_error(v.error());
    *out = *v;
  }
  return kv;
}

Result<int64_t> header_revision(const json& object) {
  const json* header = field(object, "header");
  if (header == nullptr || header->is_null()) return int64_t{0};
  if (!header->is_object()) return make_error("'header' is not an object");
  return json_int64(*header, "revision");
}

std::string cut(std::string_view text) {
  constexpr size_t kMax = 200;
  std::string s(text.substr(0, kMax));
  if (text.size() > kMax) s += "...";
  return s;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                       uint8_t(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  size_t end = text.size();
  while (end > 0 && text[end - 1] == '=' && text.size() - end < 2) --end;
  if (end != text.size() && text.size() % 4 != 0) return std::nullopt;  // padding, wrong length
  if (end % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < end; ++i) {
    const int8_t v = kDecode[static_cast<uint8_t>(text[i])];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical tail
  return out;
}

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

Result<int64_t> json_int64(const nlohmann::json& object, std::string_view name) {
  const json* f = field(object, name);
  if (f == nullptr || f->is_null()) return int64_t{0};
  if (f->is_number_unsigned()) {
    const uint64_t v = f->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX))
      return make_error("'" + std::string(name) + "' is out of range");
    return static_cast<int64_t>(v);
  }
  if (f->is_number_integer()) return f->get<int64_t>();
  if (!f->is_string()) return make_error("'" + std::string(name) + "' is not an integer");
  const std::string& s = f->get_ref<const std::string&>();
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty())
    return make_error("'" + std::string(name) + "' is not an integer");
  return v;
}

Result<WatchResponse> parse_watch_response(std::string_view line) {
  auto j = parse_object(line);
  if (!j) return make_error("watch stream: " + j.error());
  WatchResponse r;
  if (const json* err = field(*j, "error"); err != nullptr && !err->is_null()) {
    r.error = true;
    const json* msg = err->is_object() ? field(*err, "message") : err;
    r.message = msg != nullptr && msg->is_string() ? msg->get<std::string>() : cut(line);
    return r;
  }
  const json* result = field(*j, "result");
  if (result == nullptr || !result->is_object())
    return make_error("watch stream: a line without 'result'");
  auto rev = header_revision(*result);
  if (!rev) return make_error("watch stream: " + rev.error());
  r.revision = *rev;
  auto id = json_int64(*result, "watch_id");
  auto compact = json_int64(*result, "compact_revision");
  auto created = bool_field(*result, "created");
  auto canceled = bool_field(*result, "canceled");
  for (const std::string* e :
       {id ? nullptr : &id.error(), compact ? nullptr : &compact.error(),
        created ? nullptr : &created.error(), canceled ? nullptr : &canceled.error()})
    if (e != nullptr) return make_error("watch stream: " + *e);
  r.watch_id = *id;
  r.compact_revision = *compact;
  r.created = *created;
  r.canceled = *canceled;
  if (r.revision < 0 || r.compact_revision < 0)
    return make_error("watch stream: a negative revision");
  if (const json* reason = field(*result, "cancel_reason"); reason && reason->is_string())
    r.message = reason->get<std::string>();
  const json* events = field(*result, "events");
  if (events != nullptr && !events->is_null()) {
    if (!events->is_array()) return make_error("watch stream: 'events' is not an array");
    r.events.reserve(events->size());
    for (const json& e : *events) {
      if (!e.is_object()) return make_error("watch stream: an event is not an object");
      Event ev;
      if (const json* type = field(e, "type"); type != nullptr && !type->is_null()) {
        if (type->is_string() && type->get_ref<const std::string&>() == "DELETE")
          ev.type = Event::Type::kDelete;
        else if (type->is_string() && type->get_ref<const std::string&>() == "PUT")
          ev.type = Event::Type::kPut;
        else if (type->is_number_integer() && type->get<int64_t>() == 1)
          ev.type = Event::Type::kDelete;
        else if (type->is_number_integer() && type->get<int64_t>() == 0)
          ev.type = Event::Type::kPut;
        else
          return make_error("watch stream: an event of unknown type");
      }
      const json* kv = field(e, "kv");
      if (kv == nullptr) return make_error("watch stream: an event without 'kv'");
      auto parsed = parse_kv(*kv);
      if (!parsed) return make_error("watch stream: " + parsed.error());
      ev.kv = std::move(*parsed);
      if (ev.kv.mod_revision <= 0) return make_error("watch stream: an event without a revision");
      r.events.push_back(std::move(ev));
    }
  }
  return r;
}

Result<bool> WatchLineParser::feed(std::string_view bytes) {
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t nl = bytes.find('\n', start);
    const std::string_view piece =
        bytes.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (buffer_.size() + piece.size() > kMaxWatchLineBytes)
      return make_error("watch stream: a line longer than " + std::to_string(kMaxWatchLineBytes) +
                        " bytes");
    if (nl == std::string_view::npos) {
      buffer_.append(piece);
      break;
    }
    std::string_view line = piece;
    if (!buffer_.empty()) {
      buffer_.append(piece);
      line = buffer_;
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) {
      auto r = parse_watch_response(line);
      if (!r) {
        buffer_.clear();
        return make_error(r.error());
      }
      buffer_.clear();
      if (!on_response_(std::move(*r))) return false;
    }
    buffer_.clear();
    start = nl + 1;
  }
  return true;
}

Result<RangeResponse> parse_range_response(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return make_error("range reply: " + j.error());
  if (const json* err = field(*j, "error"); err != nullptr && !err->is_null())
    return make_error("range: " + gateway_error_text(body));
  RangeResponse r;
  auto rev = header_revision(*j);
  if (!rev) return make_error("range reply: " + rev.error());
  r.revision = *rev;
  auto count = json_int64(*j, "count");
  if (!count) return make_error("range reply: " + count.error());
  r.count = *count;
  auto more = bool_field(*j, "more");
  if (!more) return make_error("range reply: " + more.error());
  r.more = *more;
  if (const json* kvs = field(*j, "kvs"); kvs != nullptr && !kvs->is_null()) {
    if (!kvs->is_array()) return make_error("range reply: 'kvs' is not an array");
    r.kvs.reserve(kvs->size());
    for (const json& k : *kvs) {
      auto kv = parse_kv(k);
      if (!kv) return make_error("range reply: " + kv.error());
      r.kvs.push_back(std::move(*kv));
    }
  }
  return r;
}

std::string gateway_error_text(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_object()) {
    const json* msg = field(j, "message");
    if (msg == nullptr || !msg->is_string()) msg = field(j, "error");
    if (msg != nullptr && msg->is_object()) msg = field(*msg, "message");
    if (msg != nullptr && msg->is_string()) {
      std::string text = msg->get<std::string>();
      if (const json* code = field(j, "code"); code != nullptr && code->is_number_integer())
        text += " (code " + std::to_string(code->get<int64_t>()) + ")";
      return text;
    }
  }
  return cut(body);
}

}  // namespace exitgw::etcd
