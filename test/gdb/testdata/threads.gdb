# a watchpoint in a multi-threaded program
break main
run
watch shared
continue
continue
continue
delete
continue
