// fork/join (not RTL).
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg [7:0] r;
  initial fork r = 0; join
  assign y = a ^ b;
endmodule
