# a hardware watchpoint on a global, hit by each of its three writes
break main
run
watch counter
continue
continue
continue
continue
