# What the bench scripts share (sourced after they set $bin and $dir): the generated logs and
# the rule configurations they run on.

# Writes $dir/NAME.ndjson once: PERSONS persons over 60 days, seed 7, the real shape unless
# the generate flags say otherwise.
gen() { # name persons [generate flags]
  local name=$1 persons=$2; shift 2
  [ -s "$dir/$name.ndjson" ] || "$bin" generate --persons "$persons" --days 60 --seed 7 "$@" --output "$dir/$name.ndjson"
}

# $dir/rules.toml: tests/golden/actions.toml without its alerts (the five rules);
# $dir/no-rules.toml: the same file without its rules.
rule_configs() {
  awk '/^\[\[alerts\]\]/ {exit} {print}' tests/golden/actions.toml >"$dir/rules.toml"
  awk '/^\[\[rules\]\]/ {exit} {print}' tests/golden/actions.toml >"$dir/no-rules.toml"
}
