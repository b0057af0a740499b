import os, struct, sys, time
fd = os.open('/dev/cpu_dma_latency', os.O_WRONLY)
os.write(fd, struct.pack('i', int(sys.argv[1])))
time.sleep(float(sys.argv[2]))
