# bash completion for mcpfence(8). Commands and options are read from `mcpfence --help` and
# `mcpfence COMMAND --help`, so they are those of the installed binary.
_mcpfence()
{
	local cur prev words cword
	_init_completion || return

	local i cmd=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--) # run -- CMD ARGS...: complete the server's command line
			[[ $cmd == run ]] && { _command_offset $((i + 1)); return; }
			;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$("$1" --help 2>/dev/null |
			awk '/^commands:/ { on = 1; next } on && NF { print $1 }') --help" -- "$cur"))
		return
	fi

	case $prev in
	--policy) _filedir json; return ;;
	--audit | --output) _filedir; return ;;
	--policy-dir) _filedir -d; return ;;
	--cgroup) _filedir -d; return ;;
	--pid) _pids; return ;;
	--pipe-action) COMPREPLY=($(compgen -W "audit kill" -- "$cur")); return ;;
	--port | --name | --grace | --count | --for | --tool) return ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$("$1" "$cmd" --help 2>&1 |
			grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)" -- "$cur"))
		return
	fi
	case $cmd in
	check) _filedir json ;;
	esac
} &&
	complete -F _mcpfence mcpfence
