# hardware breakpoints on functions, four at once, a fifth refused
break main
run
hbreak step_one
hbreak step_two
hbreak step_three
continue
continue
continue
info breakpoints
delete
watch g8
watch g16
watch g32
watch g64
watch pt.y
continue
delete 6
continue
continue
delete
continue
