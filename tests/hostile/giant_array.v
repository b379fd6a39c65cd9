// A memory of 2^31 x 1024 bits: far beyond any memory cap.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg [1023:0] mem [0:2147483647];
  always @(a) mem[a] = {128{b}};
  assign y = a ^ b;
endmodule
