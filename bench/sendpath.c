// bench/sendpath.c: what sending one response body costs the sender's CPU (and the
// receiver's), by four ways of sending, over loopback TCP to a receiver draining on CPU 1:
//   0 send-heap       send() from a heap buffer (a cached entry on the heap)
//   1 sendfile-memfd  sendfile() from a memfd (a sealed cache entry, host-server/src/memfd.rs)
//   2 sendfile-file   sendfile() from a page-cached file (an uncached body, not used: see README)
//   3 pread+send      pread() + send() through a 512 KiB buffer (an uncached body today)
//   4 splice+sendfile per 512 KiB piece: splice() file -> pipe -> an emptied memfd (one copy,
//                     the snapshot pread takes), then sendfile() from the memfd (copy_file_range
//                     would be one call, but refuses a file and a memfd on two filesystems: EXDEV)
//   5 sendfile+last   sendfile() from the file for all but the last piece, an fstat after each,
//                     the last piece by pread() + send() (issue 19's proposal; see README: not safe)
//   6 send-zerocopy   send(MSG_ZEROCOPY) from the heap, completions read off the error queue
//                     (on loopback the kernel copies anyway: SO_EE_CODE_ZEROCOPY_COPIED)
//   HEAD=N in the environment puts an N-byte response head before each body in modes 0 and 1,
//   sent as satchel-server sends it: mode 0 one send() of head and body copied together up to
//   8 KiB, else one sendmsg() of both; mode 1 send(head, MSG_MORE) then sendfile().
//   PIECE=N in the environment sets mode 3's piece size (512 KiB by default, as the server's).
//   SNDBUF=N in the environment sets SO_SNDBUF on the sending socket first (the kernel doubles
//   it and stops autotuning it; unset or 0: the default, autotuned up to tcp_wmem's max).
//
//   gcc -O2 -pthread bench/sendpath.c -o /tmp/sendpath
//   head -c 268435456 /dev/urandom > /tmp/f256; cat /tmp/f256 > /dev/null
//   /tmp/sendpath SIZE MODE ITERATIONS /tmp/f256
//     -> "SIZE MODE sender_us=... receiver_us=..." (thread CPU time per body)
//
// Run the modes in interleaved rounds (README, Speed) and take medians: the machine is shared.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/sendfile.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <errno.h>
#include <linux/errqueue.h>
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
static long zc_copied, zc_done;
// Reads zerocopy completions off the error queue; blocks (poll) when `wait` until all are in.
static void zc_reap(int s, unsigned want){
 while(zc_done<(long)want){char ctl[128];struct msghdr m={.msg_control=ctl,.msg_controllen=sizeof ctl};
  if(recvmsg(s,&m,MSG_ERRQUEUE)<0){if(errno==EAGAIN||errno==EWOULDBLOCK){struct timespec ts={0,20000};nanosleep(&ts,0);continue;}perror("errqueue");exit(1);}
  for(struct cmsghdr*c=CMSG_FIRSTHDR(&m);c;c=CMSG_NXTHDR(&m,c)){struct sock_extended_err*e=(void*)CMSG_DATA(c);
   if(e->ee_origin!=SO_EE_ORIGIN_ZEROCOPY){continue;}
   zc_done+=e->ee_data-e->ee_info+1;if(e->ee_code&SO_EE_CODE_ZEROCOPY_COPIED)zc_copied+=e->ee_data-e->ee_info+1;}}}
static double tcpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec*1e9+t.tv_nsec;}
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static int rfd; static long long total; static double rcpu;
static void *rx(void*a){pin(1);char*b=malloc(1<<20);long long got=0;double t0=tcpu();
 while(got<total){ssize_t n=recv(rfd,b,1<<20,0);if(n<=0)break;got+=n;} rcpu=tcpu()-t0;return 0;}
int main(int argc,char**argv){
 size_t size=strtoul(argv[1],0,0); int mode=atoi(argv[2]); int iters=atoi(argv[3]); const char*path=argv[4];
 int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};
 bind(l,(void*)&a,sizeof a);listen(l,1);socklen_t al=sizeof a;getsockname(l,(void*)&a,&al);
 int c=socket(AF_INET,SOCK_STREAM,0);connect(c,(void*)&a,sizeof a);int s=accept(l,0,0);rfd=c;
 int one=1;setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
 {const char*sb=getenv("SNDBUF");int v=sb?atoi(sb):0;if(v>0)setsockopt(s,SOL_SOCKET,SO_SNDBUF,&v,sizeof v);}
 if(mode==6){setsockopt(s,SOL_SOCKET,SO_ZEROCOPY,&one,sizeof one);}
 int m2=memfd_create("piece",MFD_CLOEXEC);int pp[2];pipe(pp);fcntl(pp[0],F_SETPIPE_SZ,512*1024);
 char*heap=malloc(size);memset(heap,7,size);
 int mfd=memfd_create("e",MFD_CLOEXEC|MFD_ALLOW_SEALING);ftruncate(mfd,size);
 {size_t w=0;while(w<size){ssize_t n=pwrite(mfd,heap+w,size-w,w);w+=n;}}
 int ffd=open(path,O_RDONLY);char*buf=malloc(512*1024);
 unsigned zc_sent=0;
 size_t piece=getenv("PIECE")?strtoul(getenv("PIECE"),0,0):512*1024;if(piece>512*1024)buf=realloc(buf,piece);
 size_t hl=getenv("HEAD")?strtoul(getenv("HEAD"),0,0):0;if(mode>1)hl=0;
 char*head=malloc(hl+1);memset(head,'h',hl);char*co=malloc(8192);
 total=(long long)(size+hl)*iters;pthread_t t;pin(0);pthread_create(&t,0,rx,0);
 double t0=tcpu();
 for(int i=0;i<iters;i++){
  if(hl&&mode==0){size_t all=hl+size,w=0;
    if(all<=8192){memcpy(co,head,hl);memcpy(co+hl,heap,size);while(w<all){ssize_t n=send(s,co+w,all-w,0);w+=n;}}
    else{struct iovec v[2]={{head,hl},{heap,size}};struct msghdr mh={.msg_iov=v,.msg_iovlen=2};ssize_t n=sendmsg(s,&mh,0);w=n;
     while(w<all){ssize_t m=w<hl?send(s,head+w,hl-w,0):send(s,heap+(w-hl),all-w,0);w+=m;}}}
  else if(hl&&mode==1){size_t w=0;while(w<hl){ssize_t n=send(s,head+w,hl-w,MSG_MORE);w+=n;}
    off_t o=0;while((size_t)o<size){ssize_t n=sendfile(s,mfd,&o,size-o);if(n<=0){perror("sendfile");return 1;}}}
  else if(mode==0){size_t w=0;while(w<size){ssize_t n=send(s,heap+w,size-w,0);w+=n;}}
  else if(mode==1||mode==2){int fd=mode==1?mfd:ffd;off_t o=0;while((size_t)o<size){ssize_t n=sendfile(s,fd,&o,size-o);if(n<=0){perror("sendfile");return 1;}}}
  else if(mode==3){size_t o=0;while(o<size){size_t k=size-o<piece?size-o:piece;ssize_t n=pread(ffd,buf,k,o);size_t w=0;while(w<(size_t)n){ssize_t m=send(s,buf+w,n-w,0);w+=m;}o+=n;}}
  else if(mode==4){size_t o=0;while(o<size){size_t k=size-o<512*1024?size-o:512*1024;
    // Drop the last piece's pages from the memfd (the socket may still hold them), copy anew.
    if(ftruncate(m2,0)){perror("ftruncate");return 1;}size_t c=0;
    while(c<k){loff_t fi=o+c;ssize_t n=splice(ffd,&fi,pp[1],0,k-c,SPLICE_F_MOVE);if(n<=0){perror("splice");return 1;}
     ssize_t w=0;loff_t mo=c;while(w<n){ssize_t x=splice(pp[0],0,m2,&mo,n-w,SPLICE_F_MOVE);if(x<=0){perror("splice2");return 1;}w+=x;}c+=n;}
    off_t so=0;while((size_t)so<k){ssize_t n=sendfile(s,m2,&so,k-so);if(n<=0){perror("sendfile");return 1;}}o+=k;}}
  else if(mode==5){size_t o=0;struct stat st;while(o<size){size_t k=size-o<512*1024?size-o:512*1024;
    if(o+k<size){off_t fo=o;while((size_t)fo<o+k){ssize_t n=sendfile(s,ffd,&fo,o+k-fo);if(n<=0){perror("sendfile");return 1;}}}
    else{ssize_t n=pread(ffd,buf,k,o);fstat(ffd,&st);size_t w=0;while(w<(size_t)n){ssize_t m=send(s,buf+w,n-w,0);w+=m;}}
    fstat(ffd,&st);o+=k;}}
  else if(mode==6){size_t w=0;while(w<size){ssize_t n=send(s,heap+w,size-w,MSG_ZEROCOPY);if(n<0&&errno==ENOBUFS){zc_reap(s,zc_done+1);continue;}if(n<=0){perror("send zc");return 1;}w+=n;zc_sent++;}
    // The heap buffer may be reused only when the kernel is done with it.
    zc_reap(s,zc_sent);}
 }
 double sc=tcpu()-t0;pthread_join(t,0);
 const char*way=(const char*[]){"send-heap","sendfile-memfd","sendfile-file","pread+send","splice+sendfile","sendfile+last","send-zerocopy"}[mode];
 const char*sb=getenv("SNDBUF");
 char extra[64]="";if(sb&&atoi(sb)>0)snprintf(extra,sizeof extra,",sndbuf=%s",sb);
 if(mode==3&&piece!=512*1024)snprintf(extra+strlen(extra),sizeof extra-strlen(extra),",piece=%zu",piece);
 if(hl)snprintf(extra+strlen(extra),sizeof extra-strlen(extra),",head=%zu",hl);
 printf("%zu %s%s sender_us=%.2f receiver_us=%.2f\n",size,way,extra,sc/iters/1e3,rcpu/iters/1e3);
 if(mode==6)fprintf(stderr,"zerocopy: %ld of %ld sends copied by the kernel\n",zc_copied,zc_done);
 return 0;}
