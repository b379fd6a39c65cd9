// An escaped identifier spelling a testbench name.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  always @(a) \tb .stats1.errors = 0;
  assign y = a & b;
endmodule
