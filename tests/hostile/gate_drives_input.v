// A gate primitive's output terminal on an input.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  buf (a[0], 1'bx);
  assign y = a ^ b;
endmodule
