// Redeclares the port inout and drives it.
module top_module(inout [7:0] a, input [7:0] b, output [7:0] y);
  assign a = 8'hzx;
  assign y = 0;
endmodule
