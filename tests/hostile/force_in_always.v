// Forces an input from a process.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  always @(a) force b = a;
  assign y = 0;
endmodule
