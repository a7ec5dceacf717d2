# watch on globals of each width and on a struct field
break main
run
watch g8
watch g16
watch g32
watch pt.y
continue
continue
continue
continue
continue
delete
watch g64
continue
continue
delete
continue
