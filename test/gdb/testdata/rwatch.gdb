# rwatch and awatch; watch on the heap
break step_three
run
rwatch pt.x
awatch g32
continue
continue
continue
delete
watch heap[2]
continue
continue
delete
continue
