// bench/keepalive.c: N GETs of PATH one after another on one keep-alive connection to
// 127.0.0.1:PORT, each response read whole (by its Content-Length) before the next request.
// A fixed amount of work for counting a server's instructions (bench/hitcount.sh).
//
//   gcc -O2 bench/keepalive.c -o /tmp/keepalive && /tmp/keepalive PORT /1k.bin 1000
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
int main(int argc,char**argv){int port=atoi(argv[1]);const char*path=argv[2];int n=atoi(argv[3]);
 int s=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(port),.sin_addr.s_addr=htonl(0x7f000001)};
 if(connect(s,(void*)&a,sizeof a)){perror("connect");return 1;}int one=1;setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
 char req[512];int rl=snprintf(req,sizeof req,"GET %s HTTP/1.1\r\nHost: localhost:%d\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",path,port);
 static char buf[(1<<16)+1];long total=0;int headlen=0;
 for(int i=0;i<n;i++){ if(write(s,req,rl)!=rl){perror("write");return 1;}
  long got=0,need=-1;
  while(need<0||got<need){ssize_t k=read(s,buf+ (need<0?got:0),need<0?sizeof buf-got:sizeof buf);if(k<=0){fprintf(stderr,"eof at %d\n",i);return 1;}
   if(need<0){got+=k;buf[got]=0;char*e=strstr(buf,"\r\n\r\n");if(e){char*cl=strcasestr(buf,"content-length:");long len=cl?atol(cl+15):0;headlen=e+4-buf;need=headlen+len;}}
   else got+=k;}
  total+=got;}
 printf("%d responses, %ld bytes, head %d\n",n,total,headlen);return 0;}
