# bash completion for sluicectl. Installed to share/bash-completion/completions/sluicectl;
# by hand: `source tools/completion/sluicectl.bash`. Port names come from the running
# Sluice (`sluicectl ports --names`, at the --address on the line).

_sluicectl() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion -n : || return
  else
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    words=("${COMP_WORDS[@]}")
    cword=$COMP_CWORD
  fi

  local global_opts="--address --json --timeout --help --version"
  local commands="status ports stats routes neighbours flows nat services reload flush trace capture"
  local command="" address=() i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in
      --address | -a) address=(--address "${words[i + 1]}"); ((i++)) ;;
      --address=*) address=("${words[i]}") ;;
      --timeout | -t) ((i++)) ;;
      -*) ;;
      *) [[ -z $command ]] && command=${words[i]} ;;
    esac
  done

  case $prev in
    --address | -a | --timeout | -t | --interval | -i | --count | -n | -c | --limit | --cursor | --zone | --wait | \
      --duration | -d | --prefix | --address-filter | --filter | -f)
      return ;;
    --port | -p)
      if [[ $command == trace || $command == capture ]]; then
        COMPREPLY=($(compgen -W "$(sluicectl "${address[@]}" --timeout 2 ports --names 2>/dev/null)" -- "$cur"))
      fi
      return ;;
    --protocol) COMPREPLY=($(compgen -W "tcp udp icmp icmpv6" -- "$cur")); return ;;
    --state)
      COMPREPLY=($(compgen -W "established syn_sent syn_recv fin_wait close_wait last_ack time_wait close unreplied replied" -- "$cur"))
      return ;;
    --write | -w | --dumpcap)
      [[ $command == capture ]] && { COMPREPLY=($(compgen -f -- "$cur")); return; } ;;
  esac

  local opts
  case $command in
    "") if [[ $cur == -* ]]; then opts=$global_opts; else opts="$commands help"; fi ;;
    ports) opts="--names" ;;
    stats) opts="--watch --interval --count" ;;
    flows) opts="--prefix --address-filter --port --protocol --state --zone --limit --cursor" ;;
    flush) opts="--prefix --address-filter --port --protocol --state --zone --all" ;;
    trace) opts="--port --count --drops --filter --wait" ;;
    capture) opts="--port --write --count --duration --dumpcap --dry-run" ;;
    *) opts="" ;;
  esac
  [[ -n $command ]] && opts="$opts --help --json"
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -F _sluicectl sluicectl
