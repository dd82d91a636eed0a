#include "migrate/batch_rotation.h"

#include <algorithm>
#include <string_view>

#include "crypto/token_signs.h"

namespace rekey {
namespace {

// The keys of `asked` that are not among `found` (keys compared as read).
std::vector<KeyValues> missing_from(const std::vector<KeyValues>& asked, const std::vector<Row>& found) {
  std::vector<KeyValues> out;
  for (const auto& key : asked) {
    const bool read = std::any_of(found.begin(), found.end(), [&](const Row& r) { return r.key == key; });
    if (!read) out.push_back(key);
  }
  return out;
}

// Re-encrypts one non-NULL value of column `c` into `update`, counting it in
// `counts` (and `failures`); true when the cell changes.
bool rotate_value(const TableShape& shape, const crypto::Keyring& keyring, const Row& row, std::size_t c,
                  ColumnCounts& counts, RowUpdate& update, std::vector<Failure>& failures) {
  const std::string& value = *row.values.at(c);
  if (shape.policy(c) == ValuePolicy::kValuesWithToken && !crypto::holds_token(value)) {
    ++counts.no_token;
    return false;
  }
  crypto::ValueResult r = keyring.rotate(std::string_view(value.data(), value.size()));
  switch (r.outcome) {
    case crypto::ValueOutcome::kAlreadyNew:
      ++counts.already_new;
      return false;
    case crypto::ValueOutcome::kRotated:
      ++counts.rotated;
      update.cells[c] = RowUpdate::Cell{value, std::move(r.rotated)};
      return true;
    case crypto::ValueOutcome::kUnderOldKey:
    case crypto::ValueOutcome::kUndecryptable:
    case crypto::ValueOutcome::kNotToken:
      ++counts.undecryptable;
      failures.push_back(Failure{row.key, c, crypto::why_not_new(r)});
      return false;
  }
  return false;
}

}  // namespace

BatchWrite rotate_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<Row>& rows) {
  BatchWrite out;
  out.counts.resize(shape.columns.size());
  out.rows_seen = static_cast<std::int64_t>(rows.size());
  for (const Row& row : rows) {
    RowUpdate update;
    bool changed = false;
    update.cells.resize(shape.columns.size());
    for (std::size_t c = 0; c < shape.columns.size(); ++c) {
      if (!row.values.at(c)) {
        ++out.counts[c].null;
        continue;
      }
      changed = rotate_value(shape, keyring, row, c, out.counts[c], update, out.failures) || changed;
    }
    if (changed) {
      update.key = row.key;
      out.updates.push_back(std::move(update));
    }
  }
  return out;
}

BatchWrite reread_rows(const TableShape& shape, const crypto::Keyring& keyring, const std::vector<KeyValues>& asked,
                       const std::vector<Row>& rows, Reread why) {
  BatchWrite write = rotate_rows(shape, keyring, rows);
  write.rows_seen = 0;
  for (auto& counts : write.counts) counts = ColumnCounts{counts.rotated, 0, 0, counts.undecryptable, 0, 0};
  if (why == Reread::kPending) {
    write.vanished_pending = missing_from(asked, rows);
    for (const Row& r : rows) write.resolved_pending.push_back(r.key);
  }
  write.reread = true;
  write.skip_locked = true;
  return write;
}

}  // namespace rekey
