// A release of an input port.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  initial release a;
  assign y = a ^ b;
endmodule
