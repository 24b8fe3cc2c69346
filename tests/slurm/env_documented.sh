#!/usr/bin/env bash
# tests/slurm/env_documented.sh FILE...: for each job script, lists the variables it reads from
# the environment and fails unless every one of them is named in the script's header (the
# comment block at the top, #SBATCH lines included). Prints "FILE: NAME ..." per script.
# A variable counts as read from the environment when the script references it ($NAME,
# ${NAME...}) and either never assigns it or assigns it from itself (NAME=${NAME:-default},
# ${NAME:=default}); assignments in files it sources by a literal path count as assignments.
set -uo pipefail

# Set by bash itself or by every login, never a job's input.
shell_vars=" BASH_SOURCE BASH_REMATCH BASHPID FUNCNAME LINENO RANDOM SECONDS PWD OLDPWD PPID UID EUID
  HOSTNAME IFS OPTARG OPTIND PIPESTATUS REPLY HOME PATH "

# code_of FILE: the file without its comments (whole-line ones, and " # ..." outside quotes).
code_of() {
  local line out c prev i sq dq
  while IFS= read -r line || [ -n "$line" ]; do
    [[ "$line" =~ ^[[:space:]]*# ]] && continue
    out="" sq=0 dq=0 prev=" "
    for ((i = 0; i < ${#line}; i++)); do
      c=${line:i:1}
      if [ "$c" = "'" ] && [ "$dq" = 0 ]; then sq=$((1 - sq))
      elif [ "$c" = '"' ] && [ "$sq" = 0 ] && [ "$prev" != '\' ]; then dq=$((1 - dq))
      elif [ "$c" = '#' ] && [ "$sq" = 0 ] && [ "$dq" = 0 ] && [[ "$prev" =~ [[:space:]] ]]; then break
      fi
      out+=$c prev=$c
    done
    printf '%s\n' "$out"
  done <"$1"
}

# header_of FILE: the leading comment block (up to the first line of code).
header_of() {
  local line
  while IFS= read -r line; do
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] || break
    printf '%s\n' "$line"
  done <"$1"
}

# assigned_in CODE: every name the code assigns, one per line.
assigned_in() {
  local line rest w
  while IFS= read -r line; do
    rest=$line
    while [[ "$rest" =~ (^|[[:space:]\;\&\|\(])([A-Za-z_][A-Za-z0-9_]*)(\[[^]]*\])?\+?=(.*)$ ]]; do
      echo "${BASH_REMATCH[2]}"
      rest=${BASH_REMATCH[4]}
    done
    if [[ "$line" =~ (^|[[:space:]\;])for[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)[[:space:]]+in ]]; then echo "${BASH_REMATCH[2]}"; fi
    if [[ "$line" =~ (^|[[:space:]\;\&\|])(local|declare|readonly|export|read|mapfile)[[:space:]]+(.*)$ ]]; then
      for w in ${BASH_REMATCH[3]}; do
        case $w in -*|\'\'|\<*) continue ;; esac
        [[ "$w" =~ ^([A-Za-z_][A-Za-z0-9_]*)(=|$) ]] || break
        echo "${BASH_REMATCH[1]}"
      done
    fi
  done
}

# from_env FILE: the names FILE reads from the environment, one per line, sorted.
from_env() {
  local file=$1 code dir src line rest name
  code=$(code_of "$file")
  dir=$(cd "$(dirname "$file")" && pwd)
  local -A assigned=() self=()
  while IFS= read -r name; do assigned[$name]=1; done < <(assigned_in <<<"$code")
  # Assignments made by files sourced with a literal path (relative to the script or its repo).
  while IFS= read -r src; do
    for f in "$dir/$src" "$dir/../$src" "$dir/../../$src"; do
      if [ -f "$f" ]; then
        while IFS= read -r name; do assigned[$name]=1; done < <(code_of "$f" | assigned_in)
        break
      fi
    done
  done < <(sed -nE 's/^[[:space:]]*(source|\.)[[:space:]]+"?([^"$ ]+)"?.*/\2/p' <<<"$code")
  # NAME=${NAME:-...} and ${NAME:=...}: assigned, but from the environment first.
  while IFS= read -r line; do
    rest=$line
    while [[ "$rest" =~ (^|[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)=\"?\$\{([A-Za-z_][A-Za-z0-9_]*):?[-=](.*)$ ]]; do
      [ "${BASH_REMATCH[2]}" = "${BASH_REMATCH[3]}" ] && self[${BASH_REMATCH[2]}]=1
      rest=${BASH_REMATCH[4]}
    done
    rest=$line
    while [[ "$rest" =~ \$\{([A-Za-z_][A-Za-z0-9_]*):?=(.*)$ ]]; do
      self[${BASH_REMATCH[1]}]=1
      rest=${BASH_REMATCH[2]}
    done
  done <<<"$code"
  grep -oE '\$\{?[#!]?[A-Za-z_][A-Za-z0-9_]*' <<<"$code" | sed -E 's/^\$\{?[#!]?//' | sort -u |
    while IFS= read -r name; do
      [[ "$shell_vars" == *" $name "* ]] && continue
      if [ -z "${assigned[$name]:-}" ] || [ -n "${self[$name]:-}" ]; then echo "$name"; fi
    done
}

status=0
for file in "$@"; do
  header=$(header_of "$file")
  names=$(from_env "$file" | tr '\n' ' ')
  echo "$file: ${names% }"
  for name in $names; do
    if ! grep -qE "(^|[^A-Za-z0-9_])$name([^A-Za-z0-9_]|$)" <<<"$header"; then
      echo "$file: reads $name from the environment, but its header does not document it" >&2
      status=1
    fi
  done
done
exit "$status"
